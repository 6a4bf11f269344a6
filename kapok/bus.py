"""`kapok bus repair SOURCE`: start a source's stream again from its store, keeping the old one
as evidence (`shared.bus.repair`). Run it when a service's health says its relay stopped on a
message it did not publish."""

from __future__ import annotations

import argparse
import asyncio

from shared.settings import PRODUCERS, Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="bus_command", required=True)
    repair = commands.add_parser(
        "repair",
        help="re-create a source's stream that holds a stranger's message, keeping the old one "
        "as evidence; the relay publishes the store's history again",
    )
    repair.add_argument("source", choices=sorted(PRODUCERS))
    repair.add_argument("--nats", default=None, metavar="URL", help="default: as `kapok audit`")
    repair.add_argument("--data-dir", default=None, help="default: $KAPOK_DATA_DIR")
    repair.add_argument(
        "--force", action="store_true", help="repair even a stream whose hash chain is whole"
    )


def run(args: argparse.Namespace, nats_url: str) -> int:
    return asyncio.run(_repair(args.source, nats_url, args.force))


async def _repair(source: str, nats_url: str, force: bool) -> int:
    import nats

    from shared.bus.auth import ADMIN
    from shared.bus.naming import Naming
    from shared.bus.provision import event_stream_specs
    from shared.bus.repair import NothingToRepair, repair
    from shared.runtime import connect_options

    settings = Settings(nats_url=nats_url)
    naming = Naming.of(settings)
    (spec,) = [
        s
        for s in event_stream_specs(
            naming, PRODUCERS, settings.stream_replicas, settings.duplicate_window_s
        )
        if s.name == naming.stream(source)
    ]
    try:
        nc = await nats.connect(
            nats_url,
            name="kapok-bus-repair",
            allow_reconnect=False,
            **connect_options(settings, ADMIN),
        )
    except (OSError, nats.errors.Error) as error:
        print(f"kapok bus repair: cannot reach NATS at {nats_url}: {error}")
        return 1
    try:
        done = await repair(nc, spec, source, force=force)
    except NothingToRepair as whole:
        print(f"kapok bus repair: {whole}")
        return 1
    except nats.js.errors.NotFoundError:
        print(f"kapok bus repair: NATS at {nats_url} has no stream {spec.name}")
        return 1
    finally:
        await nc.close()
    found = (
        f"sequence {done.finding.seq} ({done.finding.subject}): {done.finding.reason}"
        if done.finding
        else "nothing wrong in its hash chain (forced)"
    )
    print(
        f"{done.stream}: first finding at {found}.\n"
        f"Its {done.messages} messages are kept, sealed, in {done.evidence}; {done.stream} was "
        f"made again, empty. The {source} service's relay publishes its store's history again "
        f"(its health says so), and every consumer examines again what it dead-lettered."
    )
    return 0
