"""The frame parser reads the wire exactly as nats-py's parser does, split anywhere.

Pure unit stories first: one byte stream (deliveries with headers, a status, a plain MSG for
another subscription, PING, PONG, +OK, INFO, -ERR) fed to nats-py's `Parser` and to
`FrameParser` in pieces of every size; both must call the client back with the same things.
Then on a real nats-server: a JetStream pull read through `subscribe_frames` sees what
nats-py's own subscription sees.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from typing import Any

import nats
import pytest
from nats.js import api
from nats.protocol.parser import Parser

from shared.bus.frames import Frame, FrameParser, subscribe_frames, unsubscribe_frames

OURS = 7  # the sid whose frames go to a sink
THEIRS = 3  # a sid nats-py delivers as usual


class FakeClient:
    """What a parser calls on its client, recorded in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.stats = {"in_msgs": 0, "in_bytes": 0}

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        self.calls.append(("msg", sid, bytes(subject), bytes(reply), data, headers))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: dict[str, Any]) -> None:
        self.calls.append(("info", info))

    async def _process_err(self, message: str) -> None:
        self.calls.append(("err", message))


def hmsg(subject: bytes, sid: int, reply: bytes, headers: bytes, payload: bytes) -> bytes:
    size = len(headers) + len(payload)
    space = b" " + reply if reply else b""
    return b"HMSG %s %d%s %d %d\r\n%s%s\r\n" % (
        subject, sid, space, len(headers), size, headers, payload
    )  # fmt: skip


def wire() -> bytes:
    stored = b"NATS/1.0\r\nNats-Msg-Id: hotline:1\r\n\r\n"
    ack = b"$JS.ACK.KAPOK_HOTLINE.reporting.1.%d.%d.1700000000000000000.0"
    parts = [
        hmsg(b"_INBOX.x", OURS, ack % (n, n), stored, b'{"n":%d,"text":"\xe7\xba\xa2\r\n"}' % n)
        for n in range(1, 6)
    ]
    parts.insert(2, b"MSG kapok.other %d 5\r\nhello\r\n" % THEIRS)
    parts.insert(3, b"PING\r\n")
    parts.append(b"MSG kapok.reply %d _INBOX.r 0\r\n\r\n" % THEIRS)
    parts.append(hmsg(b"_INBOX.x", OURS, b"", b"NATS/1.0 408 Request Timeout\r\n\r\n", b""))
    parts.append(b"PONG\r\n+OK\r\n")
    parts.append(b'INFO {"server_id":"x","max_payload":1048576}\r\n')
    parts.append(b"-ERR 'Permissions Violation'\r\n")
    parts.append(hmsg(b"_INBOX.x", OURS, ack % (6, 6), b"NATS/1.0\r\n\r\n", b"last"))
    return b"".join(parts)


def as_theirs_would_be(frames: list[Frame]) -> list[tuple[Any, ...]]:
    """The sink's frames in nats-py's terms, to compare with its parser's calls."""
    return [
        ("frame", subject, reply, payload, status) for subject, reply, payload, status in frames
    ]


async def run_nats_py(chunks: list[bytes]) -> list[tuple[Any, ...]]:
    client = FakeClient()
    parser = Parser(client)
    for chunk in chunks:
        await parser.parse(chunk)
    out = []
    for call in client.calls:
        if call[0] == "msg" and call[1] == OURS:
            _, _, subject, reply, data, headers = call
            status = b""
            if not reply and headers:
                status = headers.split(b"\r\n", 1)[0].removeprefix(b"NATS/1.0").strip()
            out.append(("frame", subject, reply, data, status))
        else:
            out.append(call)
    return out


async def run_frames(chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], FakeClient]:
    client = FakeClient()
    parser = Parser(client)
    parser.__class__ = FrameParser
    seen: list[tuple[Any, ...]] = []

    def sink(frames: list[Frame]) -> None:
        seen.extend(as_theirs_would_be(frames))

    parser.sinks = {OURS: sink}  # type: ignore[attr-defined]
    client.calls = seen  # one log: the sink's frames and the client's calls in order
    for chunk in chunks:
        await parser.parse(chunk)
    assert not parser.buf, "everything complete was consumed"
    return seen, client


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


async def test_given_the_whole_wire_in_one_read_then_both_parsers_agree() -> None:
    expected = await run_nats_py([wire()])
    got, client = await run_frames([wire()])
    assert sorted(map(repr, got)) == sorted(map(repr, expected))
    assert client.stats["in_msgs"] == 7  # the six deliveries and the status went to the sink
    assert [c[4] for c in got if c[0] == "frame"][-2:] == [b"408 Request Timeout", b""]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 13, 50, 101])
async def test_given_reads_of_any_size_then_the_same_calls_in_the_same_order(size: int) -> None:
    data = wire()
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    expected = await run_nats_py([data])
    got, _ = await run_frames(chunks)
    # Frames reach the sink at the end of their read; within each kind the order is the wire's.
    assert [c for c in got if c[0] == "frame"] == [c for c in expected if c[0] == "frame"]
    assert [c for c in got if c[0] != "frame"] == [c for c in expected if c[0] != "frame"]


async def test_given_random_cuts_then_nothing_is_lost_or_doubled() -> None:
    data = wire()
    expected = await run_nats_py([data])
    rng = random.Random(2020)
    for _ in range(200):
        cuts = rng.sample(range(1, len(data)), rng.randint(1, 30))
        got, _ = await run_frames(split(data, cuts))
        assert sorted(map(repr, got)) == sorted(map(repr, expected)), cuts


async def test_given_nats_py_half_way_through_a_message_then_the_frame_parser_finishes_it() -> None:
    data = wire()
    client = FakeClient()
    parser = Parser(client)
    first = data.index(b"HMSG") + 60  # inside the first delivery's payload
    await parser.parse(data[:first])
    parser.__class__ = FrameParser
    frames: list[Frame] = []
    parser.sinks = {OURS: frames.extend}  # type: ignore[attr-defined]
    await parser.parse(data[first:])
    assert [reply.split(b".")[5] for _, reply, _, _ in frames if reply] == [
        b"1", b"2", b"3", b"4", b"5", b"6"
    ]  # fmt: skip


async def test_given_an_unknown_op_then_a_protocol_error() -> None:
    parser = Parser(FakeClient())
    parser.__class__ = FrameParser
    parser.sinks = {}  # type: ignore[attr-defined]
    with pytest.raises(nats.errors.ProtocolError):
        await parser.parse(b"BOGUS line\r\n")


# -- on a real nats-server -----------------------------------------------------------------


async def test_given_a_stream_when_pulled_through_frames_then_every_message_once_in_order(
    nats_url: str,
) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stream = f"FRAMES_{random.randrange(1 << 30)}"
    await js.add_stream(name=stream, subjects=[f"{stream.lower()}.>"])
    try:
        bodies = [json.dumps({"n": n, "pad": "红" * (n % 700)}).encode() for n in range(3000)]
        for n, body in enumerate(bodies):
            await js.publish(f"{stream.lower()}.e", body, headers={"Nats-Msg-Id": str(n)})
        consumer = await js.add_consumer(
            stream, api.ConsumerConfig(ack_policy=api.AckPolicy.NONE, mem_storage=True)
        )
        got: list[Frame] = []
        over = asyncio.Event()

        def sink(frames: list[Frame]) -> None:
            got.extend(frames)
            if frames[-1][3]:  # the request's end: its status
                over.set()

        inbox = nc.new_inbox()
        sub = await subscribe_frames(nc, inbox, sink)
        request = json.dumps({"batch": 5000, "expires": 500_000_000}).encode()
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer.name}", request, inbox)
        await asyncio.wait_for(over.wait(), 10)
        # Meanwhile, nats-py's own subscriptions on the same connection still work.
        info = await js.stream_info(stream)
        await unsubscribe_frames(nc, sub)
    finally:
        await js.delete_stream(stream)
        await nc.close()
    deliveries = [frame for frame in got if frame[1]]
    assert [payload for _, _, payload, _ in deliveries] == bodies
    assert [int(reply.split(b".")[5]) for _, reply, _, _ in deliveries] == list(range(1, 3001))
    assert got[-1][3].startswith(b"408")
    assert info.state.messages == 3000


async def test_given_a_sink_that_raises_then_the_parser_reads_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = FakeClient()
    parser = Parser(client)
    parser.__class__ = FrameParser

    def broken(frames: list[Frame]) -> None:
        raise RuntimeError("bug in a sink")

    parser.sinks = {OURS: broken}  # type: ignore[attr-defined]
    await parser.parse(wire())
    assert ("ping",) in client.calls and ("msg", THEIRS, b"kapok.other", b"", b"hello", None) in (
        client.calls
    )
    assert not parser.buf
    assert "frame sink failed" in caplog.text
