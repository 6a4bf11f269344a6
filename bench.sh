#!/usr/bin/env bash
# Run a benchmark from a fresh clone:
#   ./bench.sh [--quick | --events N] [--json PATH] ...   the foundation (relay, runner)
#   ./bench.sh hotline|aid|donation|reporting|simulate [options]   one service, or the
#                                                                 full 2020 scenario
# Sets up .venv as kapok.sh does, then runs `python -m bench[.<name>]` (its own nats-servers
# on free ports and temporary data directories; PostgreSQL at 127.0.0.1:5432 when it
# answers). Results go to stdout, progress to stderr; `--help` lists each one's options.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2034 # read by say() in kapok.sh
SAY_AS=bench.sh
# shellcheck source=kapok.sh
source "$ROOT/kapok.sh" # make_venv, install_project, say: defined, nothing run

make_venv
install_project base
cd "$ROOT"
export PYTHONUNBUFFERED=1
case "${1:-}" in
hotline | aid | donation | reporting | simulate)
    name="$1"
    shift
    exec "$VENV/bin/python" -m "bench.$name" "$@"
    ;;
esac
exec "$VENV/bin/python" -m bench "$@"
