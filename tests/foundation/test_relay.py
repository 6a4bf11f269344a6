"""The outbox relay: the store's events reach JetStream in order, once, whatever happens."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import nats
import orjson
import pytest
from harness.calls import calls
from harness.waits import free_port, until

from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.contracts import Context
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay, StreamDiverged


async def test_events_reach_the_stream_in_position_order_with_their_ids(
    store: EventStore, nc: nats.NATS, naming: Naming, stream_messages
) -> None:
    await store.append_all(calls(0, 300), Context())
    await store.append_all(calls(300, 5), Context())
    relay = OutboxRelay(store, nc, naming, chunk=64)

    assert await relay.publish_pending() == 305

    stored = await store.read_from(0, 1000)
    on_bus = await stream_messages()
    assert [m.seq for m in on_bus] == [r.position for r in stored]
    assert [m.headers["Nats-Msg-Id"] for m in on_bus] == [r.event_id for r in stored]
    assert [m.data.decode() for m in on_bus] == [r.body for r in stored]
    assert on_bus[0].subject == naming.event_subject("hotline", "CallReceived")
    assert relay.stats.published == 305 and relay.stats.lag == 0


async def test_a_relay_that_forgot_its_progress_publishes_nothing_twice(
    store: EventStore, nc: nats.NATS, naming: Naming, stream_messages
) -> None:
    await store.append_all(calls(0, 50), Context())
    await OutboxRelay(store, nc, naming).publish_pending()

    # As after a crash between the PubAck and writing the progress down:
    forgetful = OutboxRelay(store, nc, naming)
    await forgetful._save_progress(10)
    await forgetful.reconcile()
    assert await forgetful.publish_pending() == 0

    assert len(await stream_messages()) == 50


async def test_two_relays_racing_on_one_store_still_publish_each_event_once_in_order(
    store: EventStore, nc: nats.NATS, naming: Naming, stream_messages
) -> None:
    await store.append_all(calls(0, 2000), Context())
    first, second = (OutboxRelay(store, nc, naming, chunk=100) for _ in range(2))

    async def publish(relay: OutboxRelay) -> None:
        # A refused publish (the other got there first) is a retry, never a wrong order.
        for _ in range(50):
            try:
                await relay.publish_pending()
                return
            except Exception:
                await relay.reconcile()

    await asyncio.gather(publish(first), publish(second))

    assert [m.seq for m in await stream_messages()] == list(range(1, 2001))
    assert [orjson.loads(m.data)["position"] for m in await stream_messages()] == list(
        range(1, 2001)
    )


async def test_a_stream_of_another_database_is_never_written_to(
    store: EventStore, nc: nats.NATS, naming: Naming, tmp_path: Path
) -> None:
    await store.append_all(calls(0, 5), Context())
    await OutboxRelay(store, nc, naming).publish_pending()
    other_db = Database(f"sqlite+aiosqlite:///{tmp_path}/other.db")
    other = EventStore(other_db, "hotline")
    await other.setup()
    await other.append_all(calls(0, 7), Context())

    with pytest.raises(StreamDiverged, match="belongs to another database"):
        await OutboxRelay(other, nc, naming).reconcile()
    await other_db.dispose()


@pytest.mark.timeout(120)
async def test_while_nats_is_down_commands_succeed_and_the_relay_catches_up(
    store: EventStore, naming: Naming, tmp_path: Path
) -> None:
    port = free_port()
    server = EmbeddedNats(tmp_path / "bus", port=port, sync="default")
    server.start()
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120))
    relay = OutboxRelay(store, nc, naming, chunk=50, ack_timeout=1.0, reconcile_every=1.0)
    running = asyncio.create_task(relay.run())
    try:
        await store.append_all(calls(0, 100), Context())
        await until("100 events relayed", lambda: _progress_is(relay, 100))

        server.stop()
        for first in range(100, 400, 50):  # the station keeps recording while the bus is down
            await store.append_all(calls(first, 50), Context())
        assert await store.head() == 400

        server = EmbeddedNats(tmp_path / "bus", port=port, sync="default")
        server.start()
        await until("400 events relayed", lambda: _progress_is(relay, 400))

        js = nc.jetstream()
        info = await js.stream_info(naming.stream("hotline"))
        assert info.state.messages == 400 and info.state.last_seq == 400
        ids = [
            (await js.get_msg(naming.stream("hotline"), seq=s)).headers["Nats-Msg-Id"]
            for s in (1, 250, 400)
        ]
        stored = await store.event_ids_at([1, 250, 400])
        assert ids == [stored[1], stored[250], stored[400]]
    finally:
        running.cancel()
        await nc.close()
        server.stop()


async def _progress_is(relay: OutboxRelay, position: int) -> bool:
    return relay.stats.progress == position


@pytest.mark.timeout(120)
async def test_a_tail_the_bus_lost_in_a_crash_is_published_again(
    store: EventStore, naming: Naming, tmp_path: Path
) -> None:
    """nats-server acknowledges before fsync: a crash can lose acknowledged messages. Here the
    bus's files are rolled back to an earlier copy, which is what such a crash leaves."""
    port, bus = free_port(), tmp_path / "bus"
    server = EmbeddedNats(bus, port=port, sync="default")
    server.start()
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120))
    relay = OutboxRelay(store, nc, naming, ack_timeout=1.0, reconcile_every=0.5)
    try:
        await store.append_all(calls(0, 60), Context())
        await relay.publish_pending()
        server.stop()
        shutil.copytree(bus, tmp_path / "bus-at-60")
        server = EmbeddedNats(bus, port=port, sync="default")
        server.start()
        await store.append_all(calls(60, 40), Context())
        await relay.publish_pending()
        assert relay.stats.progress == 100
        server.stop()
        shutil.rmtree(bus)
        shutil.copytree(tmp_path / "bus-at-60", bus)  # the crash: the last 40 are gone
        server = EmbeddedNats(bus, port=port, sync="default")
        server.start()

        running = asyncio.create_task(relay.run())
        js = nc.jetstream()

        async def restored() -> bool:
            try:
                info = await js.stream_info(naming.stream("hotline"))
            except Exception:
                return False
            return info.state.last_seq == 100

        await until("the stream back at 100", restored)
        running.cancel()

        assert relay.stats.republished == 40
        stored = await store.read_from(0, 200)
        for row in stored[55:]:
            message = await js.get_msg(naming.stream("hotline"), seq=row.position)
            assert message.data.decode() == row.body
    finally:
        await nc.close()
        server.stop()


async def _saved_progress(store: EventStore) -> int:
    from sqlalchemy import select

    from shared.eventstore.schema import outbox_progress

    async with store.db.read() as conn:
        return int(
            await conn.scalar(
                select(outbox_progress.c.position).where(outbox_progress.c.source == "hotline")
            )
            or 0
        )


async def test_a_running_relay_writes_its_progress_down_seldom_and_a_successor_sends_nothing_twice(
    store: EventStore, nc: nats.NATS, naming: Naming, stream_messages
) -> None:
    """A write per publish would take the store's one writer once per group commit; a
    running relay writes its progress when `save_every` has passed. Progress written late is
    acks lost before the write: the next relay finds the stream ahead and goes on from there."""
    relay = OutboxRelay(store, nc, naming, save_every=3600)
    running = asyncio.create_task(relay.run())
    try:
        for first in range(0, 30, 10):  # three commits, each waking the relay
            await store.append_all(calls(first, 10), Context())
            await until("the commit relayed", lambda first=first: _progress_is(relay, first + 10))
        assert await _saved_progress(store) < 30  # the first publish wrote, the later not
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running

    successor = OutboxRelay(store, nc, naming)
    await successor.reconcile()
    assert await _saved_progress(store) == 30
    await store.append_all(calls(30, 5), Context())
    assert await successor.publish_pending() == 5
    assert [m.seq for m in await stream_messages()] == list(range(1, 36))
    assert successor.stats.duplicates == 0


async def test_a_running_relay_writes_its_progress_down_when_it_is_due(
    store: EventStore, nc: nats.NATS, naming: Naming
) -> None:
    relay = OutboxRelay(store, nc, naming, save_every=0.2, poll_interval=0.05)
    running = asyncio.create_task(relay.run())
    try:
        await store.append_all(calls(0, 10), Context())
        await until("10 events relayed", lambda: _progress_is(relay, 10))
        await store.append_all(calls(10, 10), Context())

        async def saved() -> bool:
            return await _saved_progress(store) == 20

        await until("the progress written down", saved, 5)
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running


async def test_a_chunk_the_stream_refuses_moves_no_progress(
    store: EventStore, nc: nats.NATS, naming: Naming, stream_messages
) -> None:
    """One ack is asked per chunk, for its last message: its refusal fails the chunk."""
    from shared.relay import _ChunkFailed

    await store.append_all(calls(0, 10), Context())
    relay = OutboxRelay(store, nc, naming, chunk=4, ack_timeout=2.0)
    assert await relay.publish_pending() == 10
    await nc.jetstream().publish(naming.event_subject("hotline", "CallReceived"), b"{}")
    await store.append_all(calls(10, 1), Context())

    with pytest.raises(_ChunkFailed, match=r"after position 10.*wrong last sequence"):
        await relay.publish_pending()

    assert relay.stats.progress == 10
    assert [m.seq for m in await stream_messages()] == list(range(1, 12))
    with pytest.raises(StreamDiverged):
        await relay.reconcile()


class _StrangerMidChunk(OutboxRelay):
    """A relay whose chunk a stranger's publish lands in the middle of, after its `k`th
    message: as when anything else can write to the stream while a chunk is in flight."""

    stranger: Callable[[], Awaitable[None]]
    k = 3

    async def _send(self, rows, prefix):  # type: ignore[no-untyped-def]
        if len(rows) <= self.k:
            return await super()._send(rows, prefix)
        await super()._send(rows[: self.k], prefix)
        await self.nc.flush()
        await self.stranger()
        # The rest goes on as one chunk would: each expects the sequence and the id before it.
        await super()._send(rows[self.k :], prefix)


async def test_a_stranger_inside_a_chunk_moves_no_progress_and_is_named(
    store: EventStore, nc: nats.NATS, naming: Naming, stream_messages
) -> None:
    await store.append_all(calls(0, 10), Context())
    relay = _StrangerMidChunk(store, nc, naming, chunk=10, ack_timeout=2.0)

    async def stranger() -> None:
        await nc.jetstream().publish(naming.event_subject("hotline", "Oops"), b"hello")

    relay.stranger = stranger

    with pytest.raises(Exception, match="wrong last"):
        await relay.publish_pending()

    # Event 4 could not land (the stranger took sequence 4), and no later event landed in
    # its stead, so no event is lost: the progress stays where the stream is ours.
    assert relay.stats.progress == 0
    stored = {r.position: r.event_id for r in await store.read_from(0, 100)}
    on_bus = await stream_messages()
    assert [m.headers.get("Nats-Msg-Id") if m.headers else None for m in on_bus] == [
        stored[1],
        stored[2],
        stored[3],
        None,
    ]
    oops = naming.event_subject("hotline", "Oops")
    with pytest.raises(StreamDiverged, match=f"sequence 4 a message on {oops}"):
        await relay.reconcile()
    assert relay.stats.progress == 0


async def test_a_stray_on_an_idle_relay_pauses_it_visibly_until_the_stream_is_repaired(
    store: EventStore, nc: nats.NATS, naming: Naming, stream_messages
) -> None:
    await store.append_all(calls(0, 5), Context())
    relay = OutboxRelay(store, nc, naming, reconcile_every=0.2, poll_interval=0.05)
    running = asyncio.create_task(relay.run())
    try:
        await until("5 events relayed", lambda: relay.stats.progress == 5, 20)
        oops = naming.event_subject("hotline", "Oops")
        await nc.jetstream().publish(oops, b"hello")
        await store.append_all(calls(5, 2), Context())

        await until("the relay paused", lambda: relay.stats.stopped is not None, 20)
        assert f"sequence 6 a message on {oops}" in str(relay.stats.stopped)
        assert "README" in relay.stats.stopped
        assert not running.done()  # paused, not dead: it looks again

        # The operator's repair (a new stream, as `kapok` will do it): the relay publishes the
        # whole history again from the store, in order, and says it runs again.
        js = nc.jetstream()
        await js.delete_stream(naming.stream("hotline"))
        await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120))
        await until(
            "the relay running again, all 7 relayed",
            lambda: relay.stats.stopped is None and relay.stats.progress == 7,
            20,
        )
        stored = [r.event_id for r in await store.read_from(0, 100)]
        assert [m.headers["Nats-Msg-Id"] for m in await stream_messages()] == stored
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
