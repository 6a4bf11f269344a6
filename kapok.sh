#!/usr/bin/env bash
# Run Kapok from a fresh clone: ./kapok.sh <command> [args]   (e.g. ./kapok.sh nats)
# Creates .venv (Python 3.11+) and installs the project on first use, and again whenever
# pyproject.toml changes; then hands over to the `kapok` command.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$ROOT/.venv"

say() { echo "${SAY_AS:-kapok.sh}: $*" >&2; }

find_python() {
    local candidate
    for candidate in ${KAPOK_PYTHON:-} python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

make_venv() {
    [ -x "$VENV/bin/python" ] && return 0
    local python
    python="$(find_python)" || {
        say "no Python 3.11+ found (set KAPOK_PYTHON=/path/to/python3.11)"
        exit 1
    }
    say "creating $VENV with $python"
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
        # Debian ships venv's pip bootstrap separately (python3.X-venv).
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
            local minor
            minor="$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            say "installing python$minor-venv"
            rm -rf "$VENV"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python$minor-venv"
            "$python" -m venv "$VENV"
        else
            rm -rf "$VENV"
            say "$python -m venv failed; install your distribution's python3-venv package"
            exit 1
        fi
    fi
}

# install_project EXTRAS: pip install -e ".[EXTRAS]" unless the stamp says this
# pyproject.toml was installed already (with these extras, or with "test" which has all).
install_project() {
    local extras="$1" want stamp
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    for stamp in "$VENV/.kapok-installed-$extras" "$VENV/.kapok-installed-test"; do
        if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/kapok" ]; then
            return 0
        fi
    done
    local spec="$ROOT"
    [ "$extras" != base ] && spec="${ROOT}[$extras]"
    say "installing the project into .venv (pip install -e .${spec#"$ROOT"})"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$spec"
    echo "$want" >"$VENV/.kapok-installed-$extras"
}

# Sourced (by test.sh): define the functions above, run nothing.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
    return 0
fi

make_venv
install_project base
exec "$VENV/bin/kapok" "$@"
