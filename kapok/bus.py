"""`kapok bus repair SOURCE`: start a source's stream again from its store, keeping the old one
as evidence (`shared.bus.repair`). Run it when a service's health says its relay stopped on a
message it did not publish."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from shared.bus.servers import servers
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
    repair.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")
    repair.add_argument(
        "--force", action="store_true", help="repair even a stream whose hash chain is whole"
    )
    identities = commands.add_parser(
        "identities",
        help="make the bus identities' seeds under the data directory if missing and print "
        "their public keys as KAPOK_<NAME>_NKEY=U... lines (never the seeds), or with --config "
        "the accounts block an operator's nats-server needs (README, \"The bus's identities\")",
    )
    identities.add_argument("--data-dir", type=Path, default=None, help="default: $KAPOK_DATA_DIR")
    identities.add_argument("--config", action="store_true", help="print the accounts block")
    identities.set_defaults(nats=None)


def run(args: argparse.Namespace, nats_url: str) -> int:
    if args.bus_command == "identities":
        return _identities(args.data_dir or Settings().data_dir, args.config)
    return asyncio.run(_repair(args.source, nats_url, args.force))


def _identities(data_dir: Path, config: bool) -> int:
    from kapok.identities import kapok_bus
    from shared.bus.auth import Keyring, key_variable, operator_config
    from shared.bus.naming import Naming

    bus = kapok_bus(Naming.of(Settings()))
    if config:
        print(operator_config(bus))
        return 0
    for identity, key in Keyring.of(data_dir).ensure(bus.identities()).items():
        print(f"{key_variable(identity)}={key}")
    return 0


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
            servers(nats_url),
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
