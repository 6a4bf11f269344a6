"""The consumer runner: each event applied exactly once, in order, whatever is redelivered."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import nats
import orjson
import pytest
from harness.calls import CST, NANZHOU, calls, published
from harness.waits import until
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.bus.naming import Naming
from shared.consumer import ConsumerRunner
from shared.contracts import Context, Envelope, NewEvent
from shared.contracts.envelope import seal
from shared.contracts.hotline import HotlinePointOpened
from shared.contracts.registry import REGISTRY, EventRegistry
from shared.eventstore import Database, EventStore
from shared.eventstore.schema import checkpoints
from shared.relay import OutboxRelay, StreamDiverged


def opened_point() -> NewEvent:
    return NewEvent(
        HotlinePointOpened(point="point:nanzhou-1", place=NANZHOU, site="station"),
        datetime(2020, 1, 28, 9, tzinfo=CST),
    )


# The handler's state: one row per applied call, so applying twice would show.
state = MetaData()
applied = Table(
    "applied_calls",
    state,
    Column("position", Integer, primary_key=True),
    Column("call", String(64), nullable=False),
)


async def record(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
    await conn.execute(
        applied.insert(), [{"position": e.position, "call": e.data.call} for e in events]
    )


async def applied_positions(db: Database) -> list[int]:
    async with db.read() as conn:
        return list((await conn.scalars(select(applied.c.position).order_by("position"))).all())


async def dead_letters_counted(db: Database, name: str) -> int:
    async with db.read() as conn:
        return int(
            await conn.scalar(
                select(checkpoints.c.dead_letters).where(checkpoints.c.consumer == name)
            )
            or 0
        )


async def runner_on(
    db: Database, nc: nats.NATS, naming: Naming, handler=record, **kw
) -> ConsumerRunner:  # type: ignore[no-untyped-def]
    await db.create_schema(state)
    runner = ConsumerRunner(
        nc=nc, db=db, naming=naming, name="reporting", sources=["hotline"], handler=handler, **kw
    )
    await runner.setup()
    return runner


async def test_each_event_is_applied_once_in_order_with_its_checkpoint(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 2500)
    runner = await runner_on(reporting_db, nc, naming, batch=300)

    assert await runner.drain("hotline") == 2500

    assert await applied_positions(reporting_db) == list(range(1, 2501))
    assert runner.stats["hotline"].checkpoint == 2500
    await reporting_db.dispose()


async def test_redelivered_and_duplicate_events_are_skipped(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 500)
    first = await runner_on(reporting_db, nc, naming)
    await first.drain("hotline")
    # Everything delivered again from the start, as by a consumer whose acks were lost:
    js = nc.jetstream()
    await js.delete_consumer(naming.stream("hotline"), "reporting")
    await js.add_consumer(naming.stream("hotline"), first._consumer_config(start=1))

    again = await runner_on(reporting_db, nc, naming)
    await again.drain("hotline")

    assert again.stats["hotline"].skipped == 500 and again.stats["hotline"].applied == 0
    assert await applied_positions(reporting_db) == list(range(1, 501))
    await reporting_db.dispose()


async def test_a_runner_killed_half_way_resumes_without_counting_twice(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 3000)
    slow_seen: list[int] = []

    async def slow(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
        await record(conn, events)
        slow_seen.extend(e.position for e in events)
        await asyncio.sleep(0.05)

    first = await runner_on(reporting_db, nc, naming, handler=slow, batch=100)
    task = asyncio.create_task(first.drain("hotline"))
    await until("1,000 events seen by the slow handler", lambda: len(slow_seen) >= 1000, every=0.01)
    task.cancel()  # killed mid-batch: that batch's transaction never commits
    await asyncio.gather(task, return_exceptions=True)

    second = await runner_on(reporting_db, nc, naming)
    await second.drain("hotline")

    assert await applied_positions(reporting_db) == list(range(1, 3001))
    await reporting_db.dispose()


async def test_an_event_the_handler_cannot_apply_goes_to_the_dead_letters_and_is_counted(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await published(store, nc, naming, 1000)

    async def buggy(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
        if any(e.data.call == "call:700" for e in events):
            raise ValueError("a bug on call 700")
        await record(conn, events)

    runner = await runner_on(reporting_db, nc, naming, handler=buggy, retry_delay=0.01)
    await runner.drain("hotline")

    assert await applied_positions(reporting_db) == [p for p in range(1, 1001) if p != 701]
    assert await dead_letters_counted(reporting_db, "reporting") == 1
    letter = await last_dead_letter()
    assert letter["stream_seq"] == 701 and "a bug on call 700" in letter["reason"]
    assert orjson.loads(letter["original"])["data"]["call"] == "call:700"
    await reporting_db.dispose()


async def test_a_message_that_is_not_an_event_is_dead_lettered_without_blocking(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await published(store, nc, naming, 10)
    js = nc.jetstream()
    await js.publish(
        naming.event_subject("hotline", "CallReceived"),
        b'{"type": "CallReceived", "data": {"caller_name": "x"}}',
    )
    await store.append_all(calls(10, 5), Context())
    with pytest.raises(StreamDiverged):  # and the relay will not build on a stranger's message
        await OutboxRelay(store, nc, naming).reconcile()
    runner = await runner_on(reporting_db, nc, naming)
    await runner.drain("hotline")

    assert await applied_positions(reporting_db) == list(range(1, 11))
    assert runner.stats["hotline"].dead_letters == 1
    letter = await last_dead_letter()
    assert letter["stream_seq"] == 11 and letter["reason"].startswith("undecodable")
    await reporting_db.dispose()


async def test_a_database_outage_is_waited_out_never_dead_lettered(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 400)
    outages = {"left": 3}

    async def flaky(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
        if outages["left"]:
            outages["left"] -= 1
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database is down"))
        await record(conn, events)

    runner = await runner_on(reporting_db, nc, naming, handler=flaky)
    task = asyncio.create_task(runner.run())
    stats = runner.stats["hotline"]
    # While it lasts, the runner says what it meets (health shows it), and says it once.
    await until("the outage seen", lambda: stats.failing is not None, 30)
    assert "database is down" in str(stats.failing)
    await until("400 applied", lambda: stats.checkpoint >= 400, 30)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert await applied_positions(reporting_db) == list(range(1, 401))
    assert await dead_letters_counted(reporting_db, "reporting") == 0
    assert stats.failing is None and stats.failing_since is None
    await reporting_db.dispose()


async def test_a_consumer_left_with_an_old_config_is_recreated_from_the_checkpoint(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 100)
    await (await runner_on(reporting_db, nc, naming)).drain("hotline")
    js = nc.jetstream()
    await js.delete_consumer(naming.stream("hotline"), "reporting")
    # An earlier release's durable: explicit acks, started from the beginning.
    await js.add_consumer(
        naming.stream("hotline"),
        durable_name="reporting",
        ack_policy=nats.js.api.AckPolicy.EXPLICIT,
        deliver_policy=nats.js.api.DeliverPolicy.ALL,
    )
    await store.append_all(calls(100, 20), Context())
    await OutboxRelay(store, nc, naming).publish_pending()

    runner = await runner_on(reporting_db, nc, naming)
    await runner.drain("hotline")

    info = await js.consumer_info(naming.stream("hotline"), "reporting")
    assert info.config.ack_policy == nats.js.api.AckPolicy.ALL
    assert runner.stats["hotline"].skipped == 0  # started after the checkpoint, not at 1
    assert await applied_positions(reporting_db) == list(range(1, 121))
    await reporting_db.dispose()


async def test_the_runner_counts_lag_per_source(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 30)
    runner = await runner_on(reporting_db, nc, naming)

    assert await runner.refresh_lag() == {"hotline": 30}
    await runner.drain("hotline")
    assert await runner.refresh_lag() == {"hotline": 0}
    await reporting_db.dispose()


async def test_a_consumer_of_some_event_types_sees_only_those(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 20)
    await store.append("point-1", 0, [opened_point()], Context())
    await store.append_all(calls(20, 5), Context())
    await OutboxRelay(store, nc, naming).publish_pending()
    seen: list[str] = []

    async def points(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
        seen.extend(e.type for e in events)

    runner = await runner_on(
        reporting_db, nc, naming, handler=points, event_types=["HotlinePointOpened"]
    )
    assert await runner.refresh_lag() == {"hotline": 1}
    await runner.drain("hotline")

    assert seen == ["HotlinePointOpened"] and runner.stats["hotline"].checkpoint == 21
    assert await runner.refresh_lag() == {"hotline": 0}
    await reporting_db.dispose()


async def test_a_stopped_runner_ends_after_its_commit_and_the_next_one_carries_on(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 2000)
    first = await runner_on(reporting_db, nc, naming, batch=100)
    running = asyncio.create_task(first.run())
    await until("500 applied", lambda: first.stats["hotline"].checkpoint >= 500, every=0.005)

    first.stop()
    async with asyncio.timeout(10):
        await running  # returns by itself: nothing cancelled half-way

    second = await runner_on(reporting_db, nc, naming)
    await second.drain("hotline")
    assert await applied_positions(reporting_db) == list(range(1, 2001))
    await reporting_db.dispose()


async def test_the_next_batch_is_decoded_while_one_commits_and_commits_stay_in_order(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database
) -> None:
    await published(store, nc, naming, 1200)
    log: list[tuple[str, int]] = []  # ("decoded", position) / ("begin"|"end", last position)

    class Watched(EventRegistry):
        def decode(self, raw: bytes | str) -> Envelope[Any]:
            envelope = REGISTRY.decode(raw)
            log.append(("decoded", envelope.position))
            return envelope

    async def slow(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
        log.append(("begin", events[-1].position))
        await record(conn, events)
        await asyncio.sleep(0.05)  # the database's time, during which the loop decodes
        log.append(("end", events[-1].position))

    runner = await runner_on(reporting_db, nc, naming, handler=slow, batch=100, registry=Watched())
    assert await runner.drain("hotline") == 1200

    assert await applied_positions(reporting_db) == list(range(1, 1201))
    commits = [(kind, at) for kind, at in log if kind != "decoded"]
    # One commit at a time, in stream order (a pull may bring fewer than 100 on a busy
    # machine, so the batches' edges are not fixed: their order and alternation are).
    assert [kind for kind, _ in commits] == ["begin", "end"] * (len(commits) // 2)
    ends = [n for kind, n in commits if kind == "end"]
    assert ends == sorted(ends) and ends[-1] == 1200 and len(set(ends)) == len(ends)
    assert [n for kind, n in commits if kind == "begin"] == ends
    # The next batch was decoded before the commit of the one ahead of it ended (without
    # the overlap, a batch is decoded only once the previous one is committed).
    ahead = 0
    for at, (kind, n) in enumerate(log):
        if kind == "end":
            ahead += any(k == "decoded" and p > n for k, p in log[:at])
    assert ahead >= len(ends) // 2


async def forge(
    nc: nats.NATS, naming: Naming, *, like: int, position: int, prev_hash: str, sealed: bool = True
) -> None:
    """Publish, as a stranger on the bus would, a copy of the event at sequence ``like`` made
    to look like the source's event at ``position``: sealed anew (its hash right for its
    bytes) or with its bytes changed after sealing."""
    js = nc.jetstream()
    original = await js.get_msg(naming.stream("hotline"), seq=like)
    body = orjson.loads(original.data)
    body.update(position=position, prev_hash=prev_hash)
    if sealed:
        raw = seal(body)
    else:
        body["data"]["call"] = "call:forged"
        raw = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    await js.publish(original.subject, raw)


async def test_an_event_that_does_not_link_to_the_one_before_is_dead_lettered_never_applied(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await published(store, nc, naming, 10)
    ninth = orjson.loads((await nc.jetstream().get_msg(naming.stream("hotline"), seq=9)).data)
    # In its place (position 11 at sequence 11) and sealed, but naming event 9 as the one
    # before it, as an event inserted after the fact or copied from elsewhere would.
    await forge(nc, naming, like=3, position=11, prev_hash=ninth["hash"])
    runner = await runner_on(reporting_db, nc, naming)

    await runner.drain("hotline")

    assert await applied_positions(reporting_db) == list(range(1, 11))
    stats = runner.stats["hotline"]
    assert (stats.dead_letters, stats.chain_breaks, stats.checkpoint) == (1, 1, 11)
    letter = await last_dead_letter()
    assert letter["stream_seq"] == 11 and letter["reason"].startswith("chain broken")
    assert stats.last_dead_letter == letter["reason"]


async def test_an_event_altered_after_it_was_sealed_is_dead_lettered_never_applied(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await published(store, nc, naming, 10)
    tenth = orjson.loads((await nc.jetstream().get_msg(naming.stream("hotline"), seq=10)).data)
    await forge(nc, naming, like=3, position=11, prev_hash=tenth["hash"], sealed=False)
    runner = await runner_on(reporting_db, nc, naming)

    await runner.drain("hotline")

    assert await applied_positions(reporting_db) == list(range(1, 11))
    assert runner.stats["hotline"].dead_letters == 1
    assert (await last_dead_letter())["reason"].startswith("undecodable: altered")


async def test_the_chain_is_checked_across_restarts_from_the_checkpoint(
    store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
) -> None:
    await published(store, nc, naming, 10)
    first = await runner_on(reporting_db, nc, naming)
    await first.drain("hotline")
    tenth = orjson.loads((await nc.jetstream().get_msg(naming.stream("hotline"), seq=10)).data)
    ninth = orjson.loads((await nc.jetstream().get_msg(naming.stream("hotline"), seq=9)).data)
    async with reporting_db.read() as conn:
        assert await conn.scalar(select(checkpoints.c.hash)) == tenth["hash"]
    await forge(nc, naming, like=3, position=11, prev_hash=ninth["hash"])

    second = await runner_on(reporting_db, nc, naming)  # as after a restart
    await second.drain("hotline")

    assert await applied_positions(reporting_db) == list(range(1, 11))
    assert second.stats["hotline"].chain_breaks == 1
    async with reporting_db.read() as conn:
        row = (await conn.execute(select(checkpoints.c.hash, checkpoints.c.last_dead_letter))).one()
    assert row.hash == tenth["hash"]  # the chain goes on from the last event in it
    assert row.last_dead_letter.startswith("chain broken")


async def test_a_stream_repaired_after_a_stray_carries_every_event_once_to_its_consumers(
    store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database, settings
) -> None:
    """Given a stranger's message where the hotline's 11th event belonged, a relay stopped on
    it and a consumer that dead-lettered it; when the stream is repaired, then the relay
    publishes the whole history again and the consumer applies the 11th event and the rest
    exactly once, the stranger's message kept as evidence."""
    from shared.bus.provision import event_stream_specs
    from shared.bus.repair import NothingToRepair, repair

    (spec,) = [s for s in event_stream_specs(naming, ["hotline"], 1, 120) if "HOTLINE" in s.name]
    await published(store, nc, naming, 10)
    runner = await runner_on(reporting_db, nc, naming)
    with pytest.raises(NothingToRepair, match="hash chain intact"):
        await repair(nc, spec, "hotline")
    stray = naming.event_subject("hotline", "Oops")
    await nc.jetstream().publish(stray, b"hello")
    await store.append_all(calls(10, 5), Context())
    relay = OutboxRelay(store, nc, naming, reconcile_every=0.2, poll_interval=0.05)
    relaying = asyncio.create_task(relay.run())
    try:
        await runner.drain("hotline")
        assert runner.stats["hotline"].checkpoint == 11  # the stray, dead-lettered
        assert runner.stats["hotline"].diverged  # health and /metrics say so
        await until("the relay paused", lambda: relay.stats.stopped is not None, 20)

        done = await repair(nc, spec, "hotline")

        assert done.finding is not None and done.finding.seq == 11
        assert done.finding.subject == stray
        await until(
            "the relay running again, 15 relayed",
            lambda: relay.stats.stopped is None and relay.stats.progress >= 15,
            30,
        )
        # The running consumer finds its durable gone and takes position 11 again.
        consuming = asyncio.create_task(runner.run())
        try:
            await until("15 applied", lambda: runner.stats["hotline"].checkpoint >= 15, 30)
        finally:
            runner.stop()
            await consuming
        assert await applied_positions(reporting_db) == list(range(1, 16))
        assert not runner.stats["hotline"].diverged
        evidence = await nc.jetstream().stream_info(done.evidence)
        assert evidence.config.sealed and evidence.state.messages == 11
    finally:
        relaying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await relaying
