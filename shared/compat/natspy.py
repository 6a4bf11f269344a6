"""nats-py's internals (2.x) that Kapok uses, checked before use, with nats-py's public API
where they are not as expected or ``KAPOK_FAST_PATHS=0``.

- The relay writes a chunk's ready-made ``HPUB`` frames through the client's own pending
  buffer and flusher (``_send_command``, ``_flush_pending``, as its `publish` does) instead
  of one `publish` per message (shared/relay.py). Public path: `publish` per message.
- The consumer runner and the audit take JetStream deliveries straight off the client's
  protocol parser (``nc._ps``, a ``nats.protocol.parser.Parser`` calling the client back
  through ``_process_msg``, ``_process_ping``, …; a subscription's ``_id`` names its
  frames), see shared/bus/frames.py. Public path: an ordinary nats-py subscription.
- Whether the server runs JetStream: the server's INFO, which nats-py keeps in
  ``_server_info`` and shows no other way. Without it, provisioning finds out instead.

A writer is checked once per client, the parser once per process by feeding a known wire
to a fresh nats-py `Parser` and once per client for its attributes; never per message.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

from shared.compat import fast_paths, public_path

wire: ModuleType | None
try:
    from nats.protocol import parser as wire
except ImportError:  # pragma: no cover - a nats-py without it takes the public path
    wire = None

Parser: type = getattr(wire, "Parser", object)
"""nats-py's protocol parser, the base of `shared.bus.frames.FrameParser` (``object`` where
nats-py has none: then no parser is ever taken over)."""

WriteFrames = Callable[[NATS, bytes], Awaitable[None]]

# What FrameParser reads of nats-py's parser module, of a parser, and of its client.
_WIRE_NAMES = (
    "AWAITING_CONTROL_LINE",
    "AWAITING_MSG_PAYLOAD",
    "MAX_CONTROL_LINE_SIZE",
    "PING_RE",
    "PONG_RE",
    "OK_RE",
    "ERR_RE",
    "INFO_RE",
)
_PARSER_STATE = ("buf", "state", "needed", "header_needed", "msg_arg", "nc")
_CLIENT_CALLBACKS = (
    "_process_msg",
    "_process_ping",
    "_process_pong",
    "_process_info",
    "_process_err",
)

_writers: weakref.WeakKeyDictionary[NATS, WriteFrames | None] = weakref.WeakKeyDictionary()
_parser_behaves: bool | None = None  # the probe's answer, once per process


async def check(nc: NATS) -> None:
    """Check a newly connected client for every fast path, so that where one takes the
    public API it is said at start-up (once). The writer's answer is kept for the relay; the
    parser is looked at again, cheaply, when a subscription would take it over."""
    frame_writer(nc)
    await readable_parser(nc)


async def write_frames(nc: NATS, data: bytes) -> None:
    """Protocol frames onto the wire through nats-py's own buffer and flusher."""
    await nc._send_command(data)
    await nc._flush_pending()


def frame_writer(nc: NATS) -> WriteFrames | None:
    """`write_frames` where ``nc`` has what it uses; None: publish message by message."""
    try:
        return _writers[nc]
    except KeyError:
        pass
    writer: WriteFrames | None = write_frames
    what = "the relay's chunks"
    if not fast_paths():
        public_path("nats-py", what, "KAPOK_FAST_PATHS=0")
        writer = None
    elif not (
        _coroutine(getattr(nc, "_send_command", None), b"")
        and _coroutine(getattr(nc, "_flush_pending", None))
    ):
        public_path("nats-py", what, "the client has no _send_command(bytes)/_flush_pending()")
        writer = None
    _writers[nc] = writer
    return writer


async def readable_parser(nc: NATS) -> Any | None:
    """The client's protocol parser where `FrameParser` can take it over (nats-py's own
    `Parser`, or one already taken over); None: subscribe through nats-py."""
    what = "deliveries read one nats-py message at a time"
    if not fast_paths():
        public_path("nats-py", what, "KAPOK_FAST_PATHS=0")
        return None
    if not await _parser_probe():
        public_path("nats-py", what, "its protocol parser does not call back as expected")
        return None
    ps = getattr(nc, "_ps", None)
    ours = type(ps) is Parser or (isinstance(ps, Parser) and hasattr(ps, "sinks"))
    if not ours or not all(hasattr(ps, name) for name in _PARSER_STATE):
        public_path("nats-py", what, "the client's parser is not nats-py's Parser")
        return None
    if not all(inspect.iscoroutinefunction(getattr(nc, m, None)) for m in _CLIENT_CALLBACKS):
        public_path("nats-py", what, "the client lacks the _process_* callbacks")
        return None
    if not isinstance(getattr(nc, "stats", None), dict):
        public_path("nats-py", what, "the client has no stats dict")
        return None
    return ps


def subscription_id(sub: Subscription) -> int | None:
    """The sid a subscription's frames carry on the wire (None if nats-py hides it)."""
    sid = getattr(sub, "_id", None)
    return sid if isinstance(sid, int) else None


def server_info(nc: NATS) -> dict[str, Any] | None:
    """The server's INFO as nats-py keeps it, or None where it keeps it elsewhere."""
    info = getattr(nc, "_server_info", None)
    if isinstance(info, dict):
        return info
    public_path("nats-py", "the JetStream check", "the client keeps no _server_info")
    return None


def _coroutine(method: Any, *args: Any) -> bool:
    """``method`` is a coroutine function that takes ``args``."""
    if not inspect.iscoroutinefunction(method):
        return False
    try:
        inspect.signature(method).bind(*args)
    except (TypeError, ValueError):
        return False
    return True


class _Recorder:
    """A client for the probe: records what nats-py's parser calls back."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.stats = {"in_msgs": 0, "in_bytes": 0}

    async def _process_msg(self, *args: Any) -> None:
        self.calls.append(("msg", *args))

    async def _process_ping(self) -> None:
        self.calls.append(("ping",))

    async def _process_pong(self) -> None:
        self.calls.append(("pong",))

    async def _process_info(self, info: Any) -> None:
        self.calls.append(("info", info))

    async def _process_err(self, message: str) -> None:
        self.calls.append(("err", message))


_PROBE = (b"HMSG s 9 r 12 14\r\nNATS/1.0\r", b"\n\r\nhi\r\n", b"PING\r\n")
_PROBE_CALLS = [("msg", 9, b"s", b"r", b"hi", b"NATS/1.0\r\n\r\n"), ("ping",)]


async def _parser_probe() -> bool:
    """Whether nats-py's parser reads a known wire, split across reads, as FrameParser was
    written against: the module's names, the parser's state, `_process_msg(sid, subject,
    reply, payload, headers)`. Once per process."""
    global _parser_behaves
    if _parser_behaves is not None:
        return _parser_behaves
    behaves = False
    if wire is not None and all(hasattr(wire, name) for name in _WIRE_NAMES):
        client = _Recorder()
        try:
            parser = Parser(client)
            for read in _PROBE:
                await parser.parse(read)
            calls = [tuple(bytes(a) if isinstance(a, bytearray) else a for a in call)
                     for call in client.calls]  # fmt: skip
            behaves = calls == _PROBE_CALLS and all(hasattr(parser, n) for n in _PARSER_STATE)
        except Exception:
            behaves = False
    _parser_behaves = behaves
    return behaves
