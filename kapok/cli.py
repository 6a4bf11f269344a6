"""The `kapok` command: composes shared/ and the services; neither knows about it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

# Services `kapok serve` can run: each has a module `services.<name>.main` with
# ``DEFAULT_PORT`` and ``async def serve(settings, host, port)``. Add a service here.
SERVABLE = ("hotline", "aid", "donation", "people", "reporting")


def run_service(name: str, host: str, port: int | None) -> int:
    import asyncio
    import contextlib
    import importlib
    import logging

    from shared import logs
    from shared.settings import Settings

    settings = Settings()
    logs.configure(name, settings.instance, settings.log_format, logging.INFO)
    module = importlib.import_module(f"services.{name}.main")
    from kapok.identities import sign_in_from

    # Beside a `kapok nats` or `kapok up` on the same data directory: as its own identity.
    sign_in_from(Settings().data_dir, name)
    # Ctrl-C before the HTTP server took the signal over: the service cleaned up already.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(module.serve(Settings(), host, port or module.DEFAULT_PORT))
    return 0


def audit_target(args: argparse.Namespace) -> str:
    """Point the audit at the bus and the reporting service of the `kapok up` running on
    the data directory, unless told otherwise; returns the reporting URL to compare with."""
    import os

    from kapok.identities import sign_in_from
    from kapok.up import running
    from shared.settings import Settings

    data_dir = args.data_dir or Settings().data_dir
    up = running(data_dir)
    # The producers' verification keys of that data directory: the audit checks signatures.
    os.environ.setdefault(
        "KAPOK_SIGNING_DIR", str(Settings(data_dir=data_dir).signing_path.resolve())
    )
    from kapok.tokens import admin_token

    # The live figures are read signed in (KAPOK_TOKEN, else the `kapok up`'s own token).
    if "KAPOK_TOKEN" not in os.environ and (token := admin_token(Settings(data_dir=data_dir))):
        os.environ["KAPOK_TOKEN"] = token
    # The administrator repairs; the auditor reads and changes nothing.
    sign_in_from(data_dir, "admin" if args.command in ("bus", "token") else "auditor")
    if args.nats:
        os.environ["KAPOK_NATS_URL"] = args.nats
    elif "KAPOK_NATS_URL" not in os.environ and up.get("nats_url"):
        os.environ["KAPOK_NATS_URL"] = str(up["nats_url"])
    ports = up.get("ports")
    if args.url:
        return str(args.url)
    if isinstance(ports, dict) and "reporting" in ports:
        return f"http://127.0.0.1:{ports['reporting']}"
    return "http://127.0.0.1:8000"


def main(argv: Sequence[str] | None = None) -> int:
    """The command; an expected failure (kapok/failures.py) ends it in one line, exit 1."""
    from kapok import failures

    arguments = sys.argv[1:] if argv is None else list(argv)
    try:
        return run_command(arguments)
    except Exception as error:
        command = next((a for a in arguments if not a.startswith("-")), "")
        if not failures.expected(error, command):
            raise
        print(f"kapok {command}: {failures.one_line(error)}", file=sys.stderr)
        return 1


def run_command(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="kapok", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    nats = commands.add_parser("nats", help="run the embedded nats-server in the foreground")
    nats.add_argument("--port", type=int, default=4222, help="client port (0: any free port)")
    nats.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")
    nats.add_argument(
        "--sync",
        choices=["always", "default"],
        default=None,
        help="JetStream fsync: after every write, or every 2 minutes (nats-server's and Kapok's "
        "default: the store is the record; see the README)",
    )

    asyncapi = commands.add_parser("asyncapi", help="write the AsyncAPI document of the bus")
    asyncapi.add_argument("--output", "-o", type=Path, default=Path("asyncapi.json"))

    serve = commands.add_parser("serve", help="run a service: HTTP API, NATS handlers, relay")
    serve.add_argument("service", choices=sorted(SERVABLE), help="the service to run")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default: loopback)")
    serve.add_argument("--port", type=int, default=None, help="HTTP port (default: per service)")

    from kapok import up as up_command

    up = commands.add_parser("up", help="run the whole system: nats-server and every service")
    up_command.add_arguments(up, SERVABLE)

    status = commands.add_parser(
        "status",
        help="the health of the `kapok up` on --data-dir, a line per process "
        "(exit 0: all ok, 1: something degraded or down, 2: nothing runs there)",
    )
    status.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")

    from kapok import simulate as simulate_command

    simulate = commands.add_parser(
        "simulate", help="play a scenario through the running services' HTTP APIs"
    )
    simulate.add_argument("scenario", choices=simulate_command.SCENARIOS)
    simulate_command.add_arguments(simulate, SERVABLE)
    simulate_command.add_url_arguments(simulate, SERVABLE)

    demo = commands.add_parser("demo", help="kapok up, then the 2020 scenario at a visible pace")
    up_command.add_arguments(demo, SERVABLE)
    simulate_command.add_arguments(demo, SERVABLE)
    demo.set_defaults(speed=1.0, scale="0.05")

    from kapok import bus as bus_command

    bus = commands.add_parser("bus", help="repair the bus (see the README, 'When a relay stops')")
    bus_command.add_arguments(bus)

    from kapok import keys as keys_command

    keys = commands.add_parser(
        "keys", help="the producers' signing keys (README, 'Signed history')"
    )
    keys_command.add_arguments(keys)

    from kapok import tokens as token_command

    token = commands.add_parser("token", help="sign-in tokens (README, 'Signing in')")
    token_command.add_arguments(token)

    audit = commands.add_parser("audit", help="prove the reported figures from the bus")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    replay = audit_commands.add_parser(
        "replay", help="re-read every stream, check its hash chain, fold, compare with live"
    )
    replay.add_argument("--as-of", default=None, help="business day (YYYY-MM-DD); default today")
    replay.add_argument(
        "--known-at", default=None, help="only what the bus held at this instant (ISO 8601)"
    )
    replay.add_argument(
        "--nats",
        default=None,
        metavar="URL",
        help="the bus to replay (default: $KAPOK_NATS_URL, else that of the `kapok up` "
        "running on --data-dir, else nats://127.0.0.1:4222)",
    )
    replay.add_argument(
        "--url",
        default=None,
        help="the live reporting service to compare (default: that of the `kapok up` running "
        "on --data-dir, else http://127.0.0.1:8000)",
    )
    replay.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")
    replay.add_argument("--no-compare", action="store_true", help="do not ask the live service")

    args = parser.parse_args(argv)
    if args.command in ("serve", "nats", "up", "demo"):
        import os

        # What these write (databases, WAL files, the bus's store, keys, tokens) is their
        # owner's alone: 0600 files in 0700 directories (README, "Signing in").
        os.umask(0o077)
    if args.command == "nats":
        from kapok.identities import foreground_auth
        from shared.bus.embedded import run_foreground

        auth, provision_streams = foreground_auth(args.data_dir)
        return run_foreground(args.port, args.data_dir, args.sync, auth, provision_streams)
    if args.command == "asyncapi":
        from kapok.asyncapi import write_document

        path = write_document(args.output)
        print(f"wrote {path}")
        return 0
    if args.command == "serve":
        return run_service(args.service, args.host, args.port)
    if args.command == "up":
        return up_command.run(args, SERVABLE)
    if args.command == "status":
        from kapok.status import run as run_status
        from shared.settings import Settings

        return run_status(args.data_dir or Settings().data_dir)
    if args.command == "simulate":
        import os

        if args.data_dir is not None:  # where the token is (kapok/simulate/client.py)
            os.environ["KAPOK_DATA_DIR"] = str(args.data_dir)
        ports = up_command.ports_from(args, SERVABLE)
        urls = simulate_command.urls(args.base_url, ports)
        return simulate_command.run(
            args.scenario, urls, args.seed, args.scale, args.speed, args.retry_for
        )
    if args.command == "demo":
        return up_command.run(args, SERVABLE, ready=simulate_command.demo(args))
    if args.command == "keys":
        return keys_command.run(args)
    if args.command == "token":
        return token_command.run(args)
    if args.command == "bus":
        import os

        args.url = None
        audit_target(args)  # the bus of the `kapok up` on the data directory, as the audit's
        return bus_command.run(args, os.environ.get("KAPOK_NATS_URL", "nats://127.0.0.1:4222"))
    if args.command == "audit":
        from services.reporting.cli import run_audit_replay

        url = audit_target(args)
        return run_audit_replay(args.as_of, args.known_at, None if args.no_compare else url)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
