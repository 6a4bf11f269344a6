"""The `kapok` command: composes shared/ and the services; neither knows about it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kapok", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    nats = commands.add_parser("nats", help="run the embedded nats-server in the foreground")
    nats.add_argument("--port", type=int, default=4222, help="client port (0: any free port)")
    nats.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")
    nats.add_argument(
        "--sync",
        choices=["always", "default"],
        default=None,
        help="JetStream fsync: after every write (Kapok's default) or nats-server's 2 minutes",
    )

    asyncapi = commands.add_parser("asyncapi", help="write the AsyncAPI document of the bus")
    asyncapi.add_argument("--output", "-o", type=Path, default=Path("asyncapi.json"))

    args = parser.parse_args(argv)
    if args.command == "nats":
        from shared.bus.embedded import run_foreground

        return run_foreground(port=args.port, data_dir=args.data_dir, sync=args.sync)
    if args.command == "asyncapi":
        from kapok.asyncapi import write_document

        path = write_document(args.output)
        print(f"wrote {path}")
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
