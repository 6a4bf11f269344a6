"""What the bus's identities cost per message (README, "The bus's identities"): raw pipelined
publish and the relay as ``hotline``, raw pull with an ack each and the consumer runner as
``reporting`` on its durable, on a nats-server with Kapok's identities and permissions, each
divided by the same on an open server, in the same run, alternating, best of ``--rounds``.

    .venv/bin/python -m bench.auth [--events N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
from nats.aio.client import Client as NATS

from bench import publish, pull
from bench.data import SOURCE, fill_store, messages, sqlite_url
from kapok.identities import embedded_auth, provision_as_admin, signed_in_as
from shared.bus.auth import ADMIN, Keyring
from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.eventstore import EventStore
from shared.runtime import connect_options, provision
from shared.settings import Settings

DURABLE = "reporting"  # the only durable on HOTLINE the reporting identity may run
MEASURES = ("raw publish", "relay", "raw pull", "runner")


class Bus:
    """One server, open or with identities: a connection per identity the measures use."""

    def __init__(self, server: EmbeddedNats, keyring: Keyring | None) -> None:
        self.server, self.keyring = server, keyring
        self.settings = Settings(nats_url=server.url, subject_root="kapok", stream_prefix="")
        self.nc: dict[str, NATS] = {}

    async def open(self) -> None:
        for identity in ("hotline", "reporting", ADMIN):
            options = {}
            if self.keyring is not None:
                signed_in = signed_in_as(self.settings, self.keyring, identity)
                options = connect_options(signed_in, identity)
            self.nc[identity] = await nats.connect(self.server.url, **options)

    async def fresh_stream(self) -> None:
        js = self.nc[ADMIN].jetstream()
        for stream in ("HOTLINE", "DEADLETTER"):
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await js.delete_stream(stream)
        if self.keyring is not None:
            await provision_as_admin(signed_in_as(self.settings, self.keyring, ADMIN))
        else:
            await provision(self.nc[ADMIN], self.settings, admin=True)

    async def close(self) -> None:
        for nc in self.nc.values():
            await nc.close()


async def measure(bus: Bus, store: EventStore, n: int, work: Path, round_: int) -> dict:
    naming = Naming()
    msgs = await messages(store)
    times: dict[str, float] = {}

    async def timed(name: str, run: Callable[[], Awaitable[float]]) -> None:
        times[name] = await run()

    await bus.fresh_stream()
    await timed("raw publish", lambda: publish.raw_publish(bus.nc["hotline"], naming, SOURCE, msgs))
    await bus.fresh_stream()
    await timed("relay", lambda: publish.relay_publish(bus.nc["hotline"], naming, store, n))
    reporting = bus.nc["reporting"]
    await timed("raw pull", lambda: pull.raw_pull(reporting, "HOTLINE", DURABLE, n))
    await bus.nc[ADMIN].jetstream().delete_consumer("HOTLINE", DURABLE)
    url = sqlite_url(work / f"runner-{id(bus)}-{round_}.db")
    await timed("runner", lambda: pull.runner_drain(reporting, naming, SOURCE, url, DURABLE, n))
    await bus.nc[ADMIN].jetstream().delete_consumer("HOTLINE", DURABLE)
    return times


async def run(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = await fill_store(work / "store.db", n)
        keyring = Keyring.of(work / "secured")
        auth = embedded_auth(keyring, Naming())
        best: dict[tuple[str, str], float] = {}
        with (
            EmbeddedNats(work / "open", port=0) as open_server,
            EmbeddedNats(work / "secured", port=0, server_auth=auth) as secured_server,
        ):
            buses = {"open": Bus(open_server, None), "identities": Bus(secured_server, keyring)}
            for bus in buses.values():
                await bus.open()
            for round_ in range(rounds + 1):  # the first warms up
                order = list(buses) if round_ % 2 else list(reversed(buses))
                for label in order:
                    times = await measure(buses[label], store, n, work, round_)
                    for name, seconds in times.items():
                        if round_:
                            best[label, name] = min(best.get((label, name), 1e9), seconds)
            for bus in buses.values():
                await bus.close()
        await store.db.dispose()
    print(f"{n:,} events, best of {rounds} rounds each")
    print("| measure | open events/s | with identities | ratio |\n|---|---:|---:|---:|")
    for name in MEASURES:
        free, held = n / best["open", name], n / best["identities", name]
        print(f"| {name} | {free:,.0f} | {held:,.0f} | {held / free:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.events, args.rounds))


if __name__ == "__main__":
    main()
