"""A subscription's messages taken straight off nats-py's read buffer, a read at a time.

Why: nats-py makes every message a `Msg` (its header block parsed into a dict, subject and
reply decoded), queues it on the subscription and has a task await the callback with it:
about 8 µs a message here, as much as decoding the event inside, and the whole of what the
benchmarks call the raw pull. The consumer runner and the audit replay want only each
JetStream delivery's reply subject (its stream sequence, the ack address) and its payload,
thousands at a time. `subscribe_frames` hands them over as plain tuples, every frame of one
32 KiB socket read in one list, at about a fifth of that cost.

How: the client's protocol parser (``nc._ps``, nats-py's `Parser`, fed by its read loop)
becomes a `FrameParser`, which parses the same protocol with the same state and calls the
client back exactly as nats-py's parser does (`_process_msg` for every other subscription's
messages, `_process_ping`, `_process_pong`, `_process_info`, `_process_err`), except that a
frame for a subscription made here goes, unparsed beyond its control line, to that
subscription's sink. The connection, its reconnects, resubscriptions, auth and TLS remain
nats-py's. These are nats-py internals (2.x), checked by `shared.compat.natspy` before a
client's parser is taken over: where they are not as expected, or with ``KAPOK_FAST_PATHS=0``,
the subscription is an ordinary nats-py one feeding the same sink, so nothing but speed
depends on them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import ProtocolError

from shared.compat import natspy

log = logging.getLogger("kapok.bus")

Frame = tuple[bytes, bytes, bytes, bytes]
"""(subject, reply, payload, status). A JetStream delivery has a reply (its ack subject) and
status ``b""``; a status message (408 request expired, 404 no messages, 409 …) has no reply
and its status line in ``status``, e.g. ``b"408 Request Timeout"``."""

Sink = Callable[[list[Frame]], None]
"""Called in nats-py's read loop with the frames of one read, in order: it must not block."""

_CRLF = b"\r\n"
_STATUS_LINE = b"NATS/1.0"
# nats-py's parser module: FrameParser is only ever installed where natspy found it as expected.
_wire: Any = natspy.wire
_AWAITING_CONTROL_LINE = getattr(_wire, "AWAITING_CONTROL_LINE", None)
_AWAITING_MSG_PAYLOAD = getattr(_wire, "AWAITING_MSG_PAYLOAD", None)


class FrameParser(natspy.Parser):
    """nats-py's parser, state for state, with frames for ``sinks`` taken a read at a time.

    A message whose bytes are not all in yet stays in the buffer with its control line and is
    parsed again whole on the next read (the state stays "awaiting control line"), so a
    frame split across reads costs one more look at its control line, never a slower path.
    """

    sinks: dict[int, Sink]

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        if self.state == _AWAITING_MSG_PAYLOAD and not await self._finish_pending():
            return
        nc, sinks = self.nc, self.sinks
        taken: dict[int, list[Frame]] = {}
        pos, end = 0, len(buf)
        try:
            while pos < end:
                eol = buf.find(_CRLF, pos)
                if eol < 0:
                    if end - pos > _wire.MAX_CONTROL_LINE_SIZE:
                        raise ProtocolError("nats: control line too long")
                    break
                if buf[pos] not in _MESSAGE_OPS:
                    line = bytes(buf[pos : eol + 2])
                    pos = eol + 2
                    await self._control(line)
                    continue
                sid, subject, reply, headers_size, size = _message_line(bytes(buf[pos:eol]))
                start = eol + 2
                stop = start + size
                if stop + 2 > end:
                    break  # the rest of this message is still on its way
                pos = stop + 2
                if sid in sinks:
                    status = b""
                    if not reply and headers_size:
                        status = _status(bytes(buf[start : start + headers_size]))
                    frame = (subject, reply, bytes(buf[start + headers_size : stop]), status)
                    frames = taken.get(sid)
                    if frames is None:
                        taken[sid] = [frame]
                    else:
                        frames.append(frame)
                else:
                    headers = bytes(buf[start : start + headers_size]) if headers_size else None
                    payload = bytes(buf[start + headers_size : stop])
                    await nc._process_msg(sid, subject, reply, payload, headers)
        finally:
            del buf[:pos]
            for sid, frames in taken.items():
                nc.stats["in_msgs"] += len(frames)
                nc.stats["in_bytes"] += sum(len(frame[2]) for frame in frames)
                sink = sinks.get(sid)
                if sink is not None:
                    _deliver(sink, frames)

    async def _control(self, line: bytes) -> None:
        """Everything but messages, handled as nats-py's parser handles it."""
        if _wire.PING_RE.match(line):
            await self.nc._process_ping()
        elif _wire.PONG_RE.match(line):
            await self.nc._process_pong()
        elif _wire.OK_RE.match(line):
            pass
        elif match := _wire.ERR_RE.match(line):
            await self.nc._process_err(match.groups()[0].decode().lower())
        elif match := _wire.INFO_RE.match(line):
            await self.nc._process_info(json.loads(match.groups()[0].decode()))
        else:
            raise ProtocolError("nats: unknown protocol")

    async def _finish_pending(self) -> bool:
        """The message nats-py's own parser was half-way through when this one took over,
        finished from its state; False while its payload is not all in."""
        buf, needed, headers_size = self.buf, self.needed, self.header_needed
        if len(buf) < needed + 2:
            return False
        arg = self.msg_arg
        headers = bytes(buf[:headers_size]) if headers_size else None
        payload = bytes(buf[headers_size:needed])
        del buf[: needed + 2]
        self.header_needed, self.state = 0, _AWAITING_CONTROL_LINE
        sink = self.sinks.get(arg["sid"])
        if sink is None:
            await self.nc._process_msg(arg["sid"], arg["subject"], arg["reply"], payload, headers)
        elif arg["reply"] or not headers:
            _deliver(sink, [(arg["subject"], arg["reply"], payload, b"")])
        else:
            _deliver(sink, [(arg["subject"], b"", payload, _status(headers))])
        return True


def _deliver(sink: Sink, frames: list[Frame]) -> None:
    """A sink that raises must not end nats-py's read loop (and with it the connection), as a
    failing nats-py callback does not: the error is logged, the client reads on."""
    try:
        sink(frames)
    except Exception:
        log.exception("nats: a frame sink failed on %d frame(s)", len(frames))


_MESSAGE_OPS = frozenset(b"HM")  # HMSG, MSG: the only server ops starting with these


def _message_line(line: bytes) -> tuple[int, bytes, bytes, int, int]:
    """(sid, subject, reply, header bytes, total bytes) of ``MSG <subject> <sid> [reply]
    <size>`` or ``HMSG <subject> <sid> [reply] <header size> <size>``."""
    args = line.split()
    if args[0] == b"HMSG":
        reply = args[3] if len(args) == 6 else b""
        return int(args[2]), args[1], reply, int(args[-2]), int(args[-1])
    if args[0] == b"MSG":
        reply = args[3] if len(args) == 5 else b""
        return int(args[2]), args[1], reply, 0, int(args[-1])
    raise ProtocolError("nats: unknown protocol")


def _status(headers: bytes) -> bytes:
    """``b"408 Request Timeout"`` from a status message's header block."""
    line = headers.split(_CRLF, 1)[0]
    return line.removeprefix(_STATUS_LINE).strip()


async def subscribe_frames(nc: NATS, subject: str, sink: Sink) -> Subscription:
    """Subscribe ``subject`` with its messages going to ``sink`` as `Frame` lists. Unsubscribe
    with `unsubscribe_frames`."""
    parser = await _install(nc)

    async def one_by_one(msg: Msg) -> None:
        # Where the parser could not be installed: the same frames, one nats-py message each.
        status = b""
        if not msg.reply and msg.headers and "Status" in msg.headers:
            status = f"{msg.headers['Status']} {msg.headers.get('Description', '')}".strip()
            status = status.encode()
        sink([(msg.subject.encode(), msg.reply.encode(), msg.data, status)])

    sub = await nc.subscribe(subject, cb=one_by_one)
    sid = natspy.subscription_id(sub)
    if parser is not None and sid is not None:
        parser.sinks[sid] = sink
    return sub


async def unsubscribe_frames(nc: NATS, sub: Subscription) -> None:
    sinks: dict[int, Sink] | None = getattr(getattr(nc, "_ps", None), "sinks", None)
    if sinks is not None:
        sinks.pop(natspy.subscription_id(sub), None)
    await sub.unsubscribe()


async def _install(nc: NATS) -> FrameParser | None:
    """The client's parser made a `FrameParser` (once); None where `natspy` found nats-py's
    client or parser not what this module was written against, or fast paths are off."""
    ps: Any = await natspy.readable_parser(nc)
    if ps is None:
        return None
    if type(ps) is not FrameParser:
        ps.__class__ = FrameParser
        ps.sinks = {}
    return ps
