"""A consumer's checkpoint write expects the position its runner read: a second writer of
the same consumer (two reporting instances folding at once, were the lease ever to fail)
fails loudly, in its error and in health, instead of overwriting the first one's position
and counting events twice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import nats
import pytest
from harness.calls import calls, published
from sqlalchemy import Column, Integer, MetaData, Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.consumer import CheckpointMoved, ConsumerRunner
from shared.contracts import Context, Envelope
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.service.health import Health
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

state = MetaData()
counted = Table("counted_once", state, Column("position", Integer, primary_key=True))


async def count(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
    # A primary key per event: counting one twice would fail, not hide.
    await conn.execute(counted.insert(), [{"position": e.position} for e in events])


async def test_a_second_writer_of_a_checkpoint_fails_loudly_and_overwrites_nothing(
    settings: Settings, database_url: str
) -> None:
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    db = Database(database_url)
    try:
        await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120))
        store = EventStore(db, "hotline")
        await store.setup()
        await db.create_schema(state)
        await published(store, nc, naming, 1000)

        def runner() -> ConsumerRunner:
            return ConsumerRunner(
                nc=nc, db=db, naming=naming, name="reporting", sources=["hotline"], handler=count
            )

        first, second = runner(), runner()
        await first.setup()
        await second.setup()  # both read the checkpoint at 0
        assert await first.drain("hotline") == 1000
        await store.append_all(calls(1000, 500), Context())
        await OutboxRelay(store, nc, naming).publish_pending()

        with pytest.raises(CheckpointMoved, match="the checkpoint is at 1000, not at 0"):
            await second.drain("hotline")

        async with db.read() as conn:
            rows = (await conn.scalars(select(counted.c.position))).all()
        assert sorted(rows) == list(range(1, 1001))  # the second's batch rolled back whole
        status, body = await Health("reporting", db, runners=[second]).check()
        assert status == 200 and body["status"] == "degraded"
        assert any("another writer" in problem for problem in body["problems"]), body
        # The first goes on from where it was, its durable made again from its checkpoint (the
        # second's deliveries were never acknowledged), as an instance taking over does.
        await first.setup()
        assert await first.drain("hotline") == 500
        async with db.read() as conn:
            rows = (await conn.scalars(select(counted.c.position))).all()
        assert sorted(rows) == list(range(1, 1501))
    finally:
        await nc.close()
        await db.dispose()
