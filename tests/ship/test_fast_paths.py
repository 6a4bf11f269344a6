"""Kapok's fast paths through nats-py's and aiosqlite's internals (shared/compat/): where an
internal is not as expected, or with KAPOK_FAST_PATHS=0, the public API carries the same
events, and the log says so once.

The checks first, on clients and classes missing what a fast path uses; then the public paths
doing the work on a real nats-server and SQLite: the relay publishing message by message, a
JetStream pull read through nats-py's own subscription, the event store through SQLAlchemy's
own aiosqlite connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from harness.calls import calls
from harness.databases import sqlite_url
from nats.aio.client import Client as NATS
from nats.js import api
from nats.protocol.parser import Parser

import shared.compat
from shared import runtime
from shared.bus.frames import Frame, FrameParser, subscribe_frames, unsubscribe_frames
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.compat import natspy
from shared.compat import sqlite as aiosqlite_internals
from shared.contracts import Context
from shared.eventstore import Database, EventStore
from shared.eventstore.database import sqlite_driver
from shared.relay import OutboxRelay
from shared.settings import Settings


@pytest.fixture
def said(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Callable[[], list[str]]:
    """What shared/compat has said in this test (its say-once memory fresh)."""
    monkeypatch.setattr(shared.compat, "_said", set())
    caplog.set_level(logging.INFO, logger="kapok.compat")
    return lambda: caplog.messages


@pytest.fixture
def fast_paths_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPOK_FAST_PATHS", "0")


@pytest.fixture
def fast_paths_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAPOK_FAST_PATHS", "1")


# -- the checks ----------------------------------------------------------------------------


def test_given_clients_without_flush_pending_then_the_relay_writes_through_publish_said_once(
    said: Callable[[], list[str]], fast_paths_on: None
) -> None:
    clients = [NATS(), NATS()]
    for client in clients:
        client._flush_pending = None  # as if nats-py renamed it

    assert [natspy.frame_writer(client) for client in clients] == [None, None]
    assert natspy.frame_writer(NATS()) is natspy.write_frames  # an ordinary client
    assert len([m for m in said() if "relay's chunks" in m]) == 1
    assert "_flush_pending" in said()[0]


def test_given_a_send_command_of_another_shape_then_no_frame_writer(
    said: Callable[[], list[str]], fast_paths_on: None
) -> None:
    client = NATS()

    async def send_command() -> None:  # takes no frames
        return None

    client._send_command = send_command
    assert natspy.frame_writer(client) is None


def test_given_fast_paths_off_then_no_frame_writer_and_no_parser_taken(
    said: Callable[[], list[str]], fast_paths_off: None
) -> None:
    client = NATS()
    assert natspy.frame_writer(client) is None
    assert asyncio.run(natspy.readable_parser(client)) is None
    assert type(client._ps) is Parser
    assert all("KAPOK_FAST_PATHS=0" in m for m in said()) and len(said()) == 2


def test_given_a_parser_that_is_not_nats_pys_own_then_it_is_left_alone(
    said: Callable[[], list[str]], fast_paths_on: None
) -> None:
    class AnotherParser(Parser):
        pass

    client = NATS()
    client._ps.__class__ = AnotherParser
    assert asyncio.run(natspy.readable_parser(client)) is None
    assert asyncio.run(natspy.readable_parser(NATS())) is not None
    assert said() == [
        "nats-py: deliveries read one nats-py message at a time through the public API: "
        "the client's parser is not nats-py's Parser"
    ]


def test_given_a_client_without_server_info_then_the_jetstream_check_is_left_to_provisioning(
    said: Callable[[], list[str]],
) -> None:
    client = NATS()
    assert natspy.server_info(client) == {}
    del client._server_info
    assert natspy.server_info(client) is None


def test_given_aiosqlite_without_its_execute_then_the_database_uses_sqlalchemys_connections(
    said: Callable[[], list[str]],
    fast_paths_on: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    assert Database(sqlite_url(tmp_path))._one_trip
    monkeypatch.setattr(aiosqlite_internals, "on_thread", None)
    aiosqlite_internals._as_expected.cache_clear()
    try:
        assert not Database(sqlite_url(tmp_path))._one_trip
    finally:
        monkeypatch.undo()
        aiosqlite_internals._as_expected.cache_clear()
    assert len(said()) == 1 and "aiosqlite" in said()[0] and "_execute" in said()[0]


async def test_given_fast_paths_off_when_a_process_connects_then_it_says_so_at_once(
    said: Callable[[], list[str]], fast_paths_off: None, settings: Settings
) -> None:
    nc = await runtime.connect(settings, "aid")
    try:
        assert [m.split(" through")[0] for m in said()] == [
            "nats-py: the relay's chunks",
            "nats-py: deliveries read one nats-py message at a time",
        ]
    finally:
        await runtime.disconnect(nc)


# -- the public paths at work --------------------------------------------------------------


async def test_given_fast_paths_off_when_the_relay_publishes_then_every_event_through_publish(
    fast_paths_off: None, settings: Settings, tmp_path: Path
) -> None:
    naming = Naming.of(settings)
    db = Database(sqlite_url(tmp_path))
    store = EventStore(db, "hotline")
    await store.setup()
    nc = await nats.connect(settings.nats_url)
    try:
        await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120))
        await store.append_all(calls(0, 250), Context())
        published = _counting(nc, "publish")

        assert await OutboxRelay(store, nc, naming, chunk=64).publish_pending() == 250

        info = await nc.jetstream().stream_info(naming.stream("hotline"))
        last = await nc.jetstream().get_msg(naming.stream("hotline"), seq=250)
        stored = await store.read_from(249, 1)
    finally:
        await nc.close()
        await db.dispose()
    assert info.state.messages == 250 and info.state.last_seq == 250
    assert last.headers is not None and last.headers["Nats-Msg-Id"] == stored[0].event_id
    # One nats-py publish per event (the relay's own requests publish too), no frames at once.
    event_subject = naming.event_subject("hotline", "CallReceived")
    assert [subject for (subject,) in published].count(event_subject) == 250


async def test_given_fast_paths_off_when_the_store_appends_then_sqlalchemy_carries_it(
    fast_paths_off: None, tmp_path: Path
) -> None:
    db = Database(sqlite_url(tmp_path))
    store = EventStore(db, "hotline")
    await store.setup()
    try:
        await store.append_all(calls(0, 30), Context())
        async with db.read() as conn:
            driver = sqlite_driver(conn)
        stored = await store.read_from(0, 100)
    finally:
        await db.dispose()
    assert driver is None
    assert [row.position for row in stored] == list(range(1, 31))


@pytest.mark.parametrize("case", ["fast", "off", "another parser"])
async def test_when_a_stream_is_pulled_through_frames_then_every_message_once_in_order(
    case: str, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAPOK_FAST_PATHS", "0" if case == "off" else "1")
    nc = await nats.connect(nats_url)
    if case == "another parser":
        nc._ps.__class__ = type("AnotherParser", (Parser,), {})
    try:
        got, status = await _pull_through_frames(nc, count=500)
        taken = isinstance(nc._ps, FrameParser)
    finally:
        await nc.close()
    assert [json.loads(payload)["n"] for _, _, payload, _ in got] == list(range(500))
    assert [int(reply.split(b".")[5]) for _, reply, _, _ in got] == list(range(1, 501))
    assert status.startswith(b"408") or status.startswith(b"404")
    assert taken == (case == "fast")


async def _pull_through_frames(nc: NATS, count: int) -> tuple[list[Frame], bytes]:
    """``count`` messages on a stream of their own, pulled in one request through
    `subscribe_frames`: the deliveries, and the status that ended the request."""
    js = nc.jetstream()
    stream = f"SHIP_{id(nc)}"
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
    try:
        for n in range(count):
            await js.publish(f"{stream.lower()}.e", json.dumps({"n": n}).encode())
        consumer = await js.add_consumer(
            stream, api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, mem_storage=True)
        )
        got: list[Frame] = []
        ended = asyncio.get_running_loop().create_future()

        def sink(frames: list[Frame]) -> None:
            for frame in frames:
                if frame[1]:
                    got.append(frame)
                elif not ended.done():
                    ended.set_result(frame[3])

        inbox = nc.new_inbox()
        sub = await subscribe_frames(nc, inbox, sink)
        request = json.dumps({"batch": count + 1, "expires": 300_000_000}).encode()
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer.name}", request, inbox)
        status = await asyncio.wait_for(ended, 10)
        await unsubscribe_frames(nc, sub)
    finally:
        await js.delete_stream(stream)
    return got, status


def _counting(nc: NATS, method: str) -> list[Any]:
    """Count the calls of a client's method, which still does its work."""
    seen: list[Any] = []
    original: Callable[..., Awaitable[Any]] = getattr(nc, method)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        seen.append(args[:1])
        return await original(*args, **kwargs)

    setattr(nc, method, counted)
    return seen
