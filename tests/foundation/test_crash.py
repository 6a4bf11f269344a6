"""A bus crash inside nats-server's fsync interval, seen end to end: producer store, relay,
bus, consumer. Nothing the store holds is lost downstream, and nothing is applied twice."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import nats
from harness.calls import calls
from harness.waits import free_port, until
from test_consumer_runner import applied_positions, runner_on

from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.contracts import Context
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay


async def test_a_crash_that_loses_the_bus_tail_loses_nothing_and_doubles_nothing(
    store: EventStore, naming: Naming, tmp_path: Path
) -> None:
    port, bus = free_port(), tmp_path / "bus"
    server = EmbeddedNats(bus, port=port, sync="default")
    server.start()
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120))
    relay = OutboxRelay(store, nc, naming, ack_timeout=1.0, reconcile_every=0.5)
    reporting = Database(f"sqlite+aiosqlite:///{tmp_path}/reporting.db")
    runner = await runner_on(reporting, nc, naming, expires=0.2)
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(runner.run())]

    async def applied_up_to(n: int) -> bool:
        return runner.stats["hotline"].checkpoint == n

    try:
        await store.append_all(calls(0, 60), Context())
        await until("60 applied", lambda: applied_up_to(60))
        server.stop()
        snapshot = tmp_path / "bus-at-60"
        shutil.copytree(bus, snapshot)
        server = EmbeddedNats(bus, port=port, sync="default")
        server.start()
        await store.append_all(calls(60, 40), Context())
        await until("100 applied", lambda: applied_up_to(100))

        # The crash: the bus comes back as it was at 60, stream and consumer state alike.
        server.stop()
        shutil.rmtree(bus)
        shutil.copytree(snapshot, bus)
        server = EmbeddedNats(bus, port=port, sync="default")
        server.start()
        await store.append_all(calls(100, 20), Context())
        await until("120 applied", lambda: applied_up_to(120))

        assert await applied_positions(reporting) == list(range(1, 121))
        assert relay.stats.republished == 40
        assert runner.stats["hotline"].skipped == 40  # the republished tail, seen before
        info = await nc.jetstream().stream_info(naming.stream("hotline"))
        assert info.state.last_seq == 120
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
        server.stop()
        await reporting.dispose()
