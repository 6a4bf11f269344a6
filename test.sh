#!/usr/bin/env bash
# Run the tests from a fresh clone: ./test.sh [pytest args]   (paths relative to the repo root)
# Sets up .venv with the test extras (as kapok.sh does), starts a Docker engine where it
# can so the session's NATS runs through testcontainers (else it runs as a subprocess),
# makes sure PostgreSQL answers at 127.0.0.1:5432, then runs pytest; exits with its code.
#
# KAPOK_TEST_NATS=subprocess|docker  force the NATS path (subprocess: no Docker started)
# KAPOK_TEST_START_DOCKER=0          never install or start a Docker engine
# KAPOK_TEST_POSTGRES_URL=...        another PostgreSQL (then it is not started here)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2034 # read by say() in kapok.sh
SAY_AS=test.sh
# shellcheck source=kapok.sh
source "$ROOT/kapok.sh" # make_venv, install_project, say: defined, nothing run
LOGS="${TMPDIR:-/tmp}"

docker_answers() {
    "$VENV/bin/python" -c 'import docker; docker.from_env(timeout=5).ping()' >/dev/null 2>&1
}

# Never fails the run: without an engine the harness runs nats-server as a subprocess.
start_docker() {
    if [ "${KAPOK_TEST_NATS:-auto}" = subprocess ] || [ "${KAPOK_TEST_START_DOCKER:-1}" = 0 ]; then
        return 0
    fi
    if docker_answers; then
        say "Docker engine answers: NATS through testcontainers"
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        say "no Docker engine, and not root to start one: NATS as a subprocess"
        return 0
    fi
    if ! command -v dockerd >/dev/null 2>&1; then
        if ! command -v apt-get >/dev/null 2>&1; then
            say "no dockerd and no apt-get: NATS as a subprocess"
            return 0
        fi
        say "installing docker.io (log: $LOGS/kapok-apt-docker.log)"
        local began=$SECONDS
        if ! { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io; } \
            >"$LOGS/kapok-apt-docker.log" 2>&1; then
            say "could not install docker.io (see the log): NATS as a subprocess"
            return 0
        fi
        say "docker.io installed in $((SECONDS - began)) s"
    fi
    local log="$LOGS/kapok-dockerd.log" pid began=$SECONDS
    if [ -f /var/run/docker.pid ] && kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
        # Another run started it moments ago: a second dockerd would only fail.
        pid="$(cat /var/run/docker.pid)"
        say "dockerd (pid $pid) runs but does not answer yet: waiting for it"
    else
        say "starting dockerd in the background (log: $log)"
        # Own session: Ctrl-C on this run must not take the engine down with it.
        setsid dockerd >>"$log" 2>&1 </dev/null &
        pid=$!
    fi
    while [ $((SECONDS - began)) -lt 30 ]; do
        if docker_answers; then
            say "Docker engine up in $((SECONDS - began)) s: NATS through testcontainers"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break # it failed: no point waiting
        sleep 0.5
    done
    say "dockerd did not answer (last log lines below): NATS as a subprocess"
    tail -n 5 "$log" >&2 || true
}

pg_answers() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

ensure_postgres() {
    # Another server named explicitly is whoever named it's to run.
    [ -n "${KAPOK_TEST_POSTGRES_URL:-}" ] && return 0
    pg_answers && return 0
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        local dir
        for dir in /etc/postgresql/*/; do
            say "starting PostgreSQL $(basename "$dir")"
            pg_ctlcluster --skip-systemctl-redirect "$(basename "$dir")" main start >&2 || true
        done
        for _ in $(seq 1 30); do
            pg_answers && return 0
            sleep 0.5
        done
    fi
    say "PostgreSQL does not answer at 127.0.0.1:5432: postgres tests are skipped (fail if CI=true)"
}

make_venv
install_project test
# promtool (Debian package prometheus) validates reporting's /metrics; the test fails with a
# clear message where it is missing, so install it where we can.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing prometheus for promtool (log: $LOGS/kapok-apt-prometheus.log)"
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            --no-install-recommends prometheus; } >"$LOGS/kapok-apt-prometheus.log" 2>&1 ||
            say "could not install prometheus (see the log): the /metrics test will say so"
    else
        say "no promtool, and no way to install it: the /metrics test will say so"
    fi
}

# Chromium and its driver (Debian packages chromium, chromium-driver) run the dashboard test
# in a headless browser; it fails with a clear message where they are missing.
ensure_chromium() {
    command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing chromium and chromium-driver (log: $LOGS/kapok-apt-chromium.log)"
        { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            chromium chromium-driver; } >"$LOGS/kapok-apt-chromium.log" 2>&1 ||
            say "could not install chromium (see the log): the dashboard test will say so"
    else
        say "no chromium, and no way to install it: the dashboard test will say so"
    fi
}

start_docker
ensure_postgres
ensure_promtool
ensure_chromium

export PYTHONUNBUFFERED=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
# testcontainers' reaper is an image to pull; the harness removes its containers itself.
export TESTCONTAINERS_RYUK_DISABLED=true
cd "$ROOT"
# -ra: say why anything was skipped (no PostgreSQL, no Docker).
exec "$VENV/bin/python" -m pytest -ra "$@"
