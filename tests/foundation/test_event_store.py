"""The event store: atomic appends, optimistic concurrency, commit-ordered positions, chain."""

from __future__ import annotations

import asyncio
import random

import orjson
import pytest
from harness.calls import call, calls
from sqlalchemy import func, select

from shared.contracts import GENESIS, Context, NewEvent, verify_link
from shared.contracts.aid import AidAssigned
from shared.contracts.envelope import canonical_bytes, seal
from shared.eventstore import Append, ConcurrencyError, Database, EventStore
from shared.eventstore.schema import events


async def count(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(events)) or 0)


async def test_appended_events_load_in_version_order(store: EventStore) -> None:
    await store.append("call-1", 0, [call(1)], Context(actor="worker:w17"))
    await store.append("call-2", 0, [call(2)], Context())
    await store.append("call-1", 1, [call(3), call(4)], Context())

    loaded = await store.load("call-1")

    assert [(e.version, e.position) for e in loaded] == [(1, 1), (2, 3), (3, 4)]
    assert [e.data.call for e in loaded] == ["call:1", "call:3", "call:4"]
    assert loaded[0].actor == "worker:w17" and loaded[0].source == "hotline"
    assert loaded[0].occurred_at == call(1).occurred_at


async def test_a_stale_expected_version_writes_nothing(store: EventStore) -> None:
    await store.append("call-1", 0, [call(1)], Context())

    with pytest.raises(ConcurrencyError, match="call-1: expected version 0, found version 1"):
        await store.append("call-1", 0, [call(2)], Context())

    assert await count(store.db) == 1 and await store.head() == 1


async def test_an_expected_version_from_the_future_is_refused(store: EventStore) -> None:
    with pytest.raises(ConcurrencyError, match="expected version 3, found version 0"):
        await store.append("call-9", 3, [call(9)], Context())
    assert await count(store.db) == 0


async def test_one_stale_stream_in_a_batch_writes_nothing_of_the_batch(store: EventStore) -> None:
    await store.append("call-2500", 0, [call(2500)], Context())

    with pytest.raises(ConcurrencyError):
        await store.append_all(calls(0, 5000), Context())

    assert await count(store.db) == 1 and await store.head() == 1


async def test_an_event_of_another_source_is_refused(store: EventStore) -> None:
    assigned = NewEvent(AidAssigned(request="request:1", assignee="worker:w1"), call(1).occurred_at)
    with pytest.raises(ValueError, match="AidAssigned belongs to aid"):
        await store.append_all([*calls(0, 3), Append("request-1", 0, [assigned])], Context())
    assert await count(store.db) == 0


async def test_every_event_links_to_the_one_before(store: EventStore) -> None:
    await store.append_all(calls(0, 200), Context())
    await store.append("call-0", 1, [call(1000)], Context())

    rows = await store.read_from(0, 1000)
    prev = GENESIS
    for row in rows:
        prev = verify_link(orjson.loads(row.body), prev)
    assert [r.position for r in rows] == list(range(1, 202))


async def test_stored_bytes_are_the_canonical_seal_of_their_body(store: EventStore) -> None:
    """The store makes an event's bytes without `seal`: they must be exactly its bytes."""
    ctx = Context(actor="worker:w17")
    caused = Context(correlation_id=ctx.correlation_id, causation_id=ctx.correlation_id)
    await store.append_all(calls(0, 3), ctx)
    await store.append("call-0", 1, [call(7)], caused)

    made = [call(0), call(1), call(2), call(7)]
    for row, new in zip(await store.read_from(0, 10), made, strict=True):
        body = orjson.loads(row.body)
        assert seal(dict(body)).decode() == row.body
        assert canonical_bytes(body).decode() == row.body
        assert body["data"] == new.data.model_dump(mode="json")


async def test_context_travels_on_every_event(store: EventStore) -> None:
    ctx = Context(actor="volunteer:v3")
    caused = Context(
        actor="system", correlation_id=ctx.correlation_id, causation_id=ctx.correlation_id
    )
    await store.append("call-1", 0, [call(1)], ctx)
    await store.append("call-1", 1, [call(2)], caused)

    first, second = await store.load("call-1")

    assert first.correlation_id == second.correlation_id == ctx.correlation_id
    assert first.causation_id is None and second.causation_id == ctx.correlation_id
    assert first.event_id < second.event_id  # UUIDv7: time-ordered


@pytest.mark.timeout(120)
async def test_a_tailing_reader_never_sees_a_gap_under_concurrent_appenders(
    postgres_url: str,
) -> None:
    """The outbox gap: with positions handed out before commit, a reader can see N+1 while N
    is still uncommitted, move past N, and never publish it. Appenders here hold their
    transaction open a random while after taking positions, the widest window for it."""
    db = Database(postgres_url)
    store = EventStore(db, "hotline")
    await store.setup()
    writers, batches, size = 8, 25, 4
    total = writers * batches * size

    async def appender(w: int) -> None:
        for b in range(batches):
            first = (w * batches + b) * size
            async with db.write() as conn:
                await store.append_in(conn, calls(first, size), Context())
                await asyncio.sleep(random.uniform(0, 0.01))

    async def tail() -> list[int]:
        seen: list[int] = []
        while len(seen) < total:
            rows = await store.read_from(seen[-1] if seen else 0, 1000)
            for row in rows:
                # The reader moves its cursor past what it read: any gap here is an event
                # this reader would never see again.
                assert row.position == (seen[-1] if seen else 0) + 1, "gap in positions"
                seen.append(row.position)
            await asyncio.sleep(0)
        return seen

    reader = asyncio.create_task(tail())
    await asyncio.gather(*(appender(w) for w in range(writers)))
    seen = await asyncio.wait_for(reader, 60)
    await db.dispose()

    assert seen == list(range(1, total + 1))


async def test_one_aggregate_twice_in_a_transaction_is_refused(store: EventStore) -> None:
    with pytest.raises(ValueError, match="appended twice"):
        await store.append_all([*calls(0, 2), *calls(1, 1)], Context())
    assert await count(store.db) == 0


async def test_pooled_readers_never_keep_an_old_snapshot(store: EventStore) -> None:
    """Readers go back to the pool without a rollback of their own (SQLAlchemy ends what it
    began, and the driver's statements run in none): each read still sees every commit."""
    for i in range(1, 13):  # more reads than pooled connections, each after a commit
        await store.append(f"call-{i}", 0, [call(i)], Context())
        assert await count(store.db) == i  # through SQLAlchemy, in a transaction
        assert [r.position for r in await store.read_from(i - 1, 10)] == [i]  # the driver's
        assert [r.body.decode() for r in await store.read_bytes_from(i - 1, 10)] == [
            r.body for r in await store.read_from(i - 1, 10)
        ]


async def test_a_commit_wakes_every_waiter_and_none_misses_one(db: Database) -> None:
    """What the relay waits on: a commit after the count it read wakes it, even one made
    before it started waiting, and waiters never take a wake-up from one another."""
    seen = db.commits
    waiters = [asyncio.create_task(db.wait_for_commit(seen, 30)) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert not any(w.done() for w in waiters)
    store = EventStore(db, "hotline")
    await store.setup()  # a write transaction
    async with asyncio.timeout(5):
        await asyncio.gather(*waiters)
    async with asyncio.timeout(5):
        await db.wait_for_commit(seen, 30)  # committed since: at once
    began = asyncio.get_running_loop().time()
    await db.wait_for_commit(db.commits, 0.2)  # nothing committed: the timeout
    assert asyncio.get_running_loop().time() - began >= 0.19
