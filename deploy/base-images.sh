#!/usr/bin/env bash
# Base images made here from Debian's packages, for machines that cannot pull from a registry
# (the Dockerfile's default bases; see the README, "Running on more than one machine"):
#
#   kapok/base:bookworm     python3, libstdc++ (greenlet's), tzdata and CA certificates: the
#                           final image's base (no compiler, no pip)
#   kapok/build:bookworm    the same and python3-venv: the build stage, which installs Kapok
#                           and its wheels into /opt/kapok
#   kapok/infra:bookworm    with --infra: PostgreSQL 15 and Prometheus from Debian, run by
#                           deploy/offline/Dockerfile as stand-ins for the official postgres and
#                           prom/prometheus images (deploy/compose.offline.yaml)
#
# Needs root (or mmdebstrap's unshare mode), mmdebstrap (apt-get install mmdebstrap) and a
# Docker engine; reaches only Debian's mirror. About a minute each on a 2-core machine.
set -euo pipefail

SUITE="${KAPOK_DEBIAN_SUITE:-bookworm}"
say() { echo "base-images: $*" >&2; }

make_root() { # tag, packages (comma-separated)
    local tag="$1" packages="$2" began=$SECONDS
    if docker image inspect "$tag" >/dev/null 2>&1 && [ "${KAPOK_REBUILD_BASE:-0}" != 1 ]; then
        say "$tag exists (KAPOK_REBUILD_BASE=1 to make it again)"
        return 0
    fi
    say "making $tag from Debian $SUITE: $packages"
    # essential: Debian's Essential:yes set only (no apt); docs and locales left out.
    mmdebstrap --variant=essential --include="$packages" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$SUITE" - |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENV LANG=C.UTF-8' \
            --change 'CMD ["/bin/bash"]' \
            - "$tag" >/dev/null
    say "$tag made in $((SECONDS - began)) s"
}

make_root kapok/base:"$SUITE" python3,libstdc++6,tzdata,ca-certificates
make_root kapok/build:"$SUITE" python3,python3-venv,libstdc++6,tzdata,ca-certificates
if [ "${1:-}" = --infra ]; then
    make_root kapok/infra:"$SUITE" postgresql-15,prometheus,ca-certificates,python3
fi
