"""The stream fences the relay: were the lease ever to fail (a holder cut off from the
database publishing on until its next check while the other has taken over), two relays of
one source publishing at once still leave the stream equal to the store. Each publish expects
the previous sequence and message id, so the slower one's are acknowledged as duplicates or
refused, never stored twice, and neither finds a stranger on the stream."""

from __future__ import annotations

import asyncio

import nats
import pytest
from cluster_parts import stream_holds_store
from harness.calls import calls
from harness.waits import until

from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.contracts import Context
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_two_relays_publishing_at_once_leave_the_stream_equal_to_the_store(
    settings: Settings, database_url: str
) -> None:
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    # Two instances' stores on one database, each with its relay and no lease.
    stores = [EventStore(Database(database_url), "hotline") for _ in range(2)]
    tasks: list[asyncio.Task[None]] = []
    try:
        await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120))
        for store in stores:
            await store.setup()
        relays = [OutboxRelay(store, nc, naming, chunk=200) for store in stores]
        tasks = [asyncio.create_task(relay.run()) for relay in relays]
        for first in range(0, 3000, 100):  # commands at both instances, while both publish
            await stores[first // 100 % 2].append_all(calls(first, 100), Context())
            await asyncio.sleep(0.01)
        js = nc.jetstream()

        async def caught_up() -> bool:
            return (await js.stream_info(naming.stream("hotline"))).state.last_seq == 3000

        await until("the stream caught up", caught_up, 30)
        assert await stream_holds_store(nc, naming, "hotline", database_url) == 3000
        assert [relay.stats.stopped for relay in relays] == [None, None]  # no StreamDiverged
        # Each event stored once (what each relay counts as its own publishes can overlap:
        # a chunk whose ack failed at one relay may have landed, then found by the other).
        assert (await js.stream_info(naming.stream("hotline"))).state.messages == 3000
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await nc.close()
        for store in stores:
            await store.db.dispose()
