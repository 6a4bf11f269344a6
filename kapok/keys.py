"""`kapok keys rotate SOURCE`: a new signing key for a producing service, signing from the
position after its store's head (`shared.signing`). With the service stopped: a running one
would go on signing with the key it loaded. Older events keep verifying with the older key,
which is refused for any later position."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from shared.settings import PRODUCERS, Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="keys_command", required=True)
    rotate = commands.add_parser(
        "rotate", help="a new signing key for a source, from the position after its head"
    )
    rotate.add_argument("source", choices=sorted(PRODUCERS))
    rotate.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")


def run(args: argparse.Namespace) -> int:
    from kapok.up import running
    from shared import signing
    from shared.eventstore import Database, EventStore

    settings = Settings()
    if args.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": args.data_dir})
    if running(settings.data_dir):
        print(
            f"kapok keys rotate: a `kapok up` runs on {settings.data_dir}: stop it first (the "
            f"{args.source} service would go on signing with the key it loaded)"
        )
        return 1

    async def head() -> int:
        db = Database(settings.database_url_for(args.source))
        try:
            return await EventStore(db, args.source).head()
        finally:
            await db.dispose()

    last = asyncio.run(head())
    kid = signing.rotate(settings.signing_path, args.source, last)
    print(
        f"{args.source} signs with key {kid} from position {last + 1} on; its earlier events "
        f"keep verifying with the key before it ({settings.signing_path / signing.RING})"
    )
    return 0
