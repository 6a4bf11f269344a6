#!/usr/bin/env bash
# Run the benchmark from a fresh clone: ./bench.sh [--quick | --events N] [--json PATH] ...
# Sets up .venv as kapok.sh does, then runs `python -m bench` (its own nats-servers on free
# ports and temporary data directories; PostgreSQL at 127.0.0.1:5432 when it answers).
# The table goes to stdout, progress to stderr; `./bench.sh --help` lists the options.
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
exec "$VENV/bin/python" -m bench "$@"
