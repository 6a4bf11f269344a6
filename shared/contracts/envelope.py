"""The one envelope every event travels in, its canonical bytes and its hash chain.

The bytes on the bus are the canonical form: JSON with sorted keys and no spaces, UTF-8.
Each source's events form a chain: ``hash = sha256(canonical bytes without "hash")`` and
``prev_hash`` is the hash of the source's previous event (``GENESIS`` for the first), so an
auditor who re-hashes the stream sees any altered, dropped or inserted event.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar
from uuid import UUID

import orjson
from pydantic import AwareDatetime, Field, SerializerFunctionWrapHandler, model_serializer

from shared.contracts.types import Actor, Contract

GENESIS = "0" * 64
SYSTEM = "system"


class Event(Contract):
    """Payload of a domain event. A subclass names its `source`; its class name is its type."""

    source: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def type_name(cls) -> str:
        return cls.__name__


D = TypeVar("D", bound=Event)


class Envelope(Contract, Generic[D]):
    event_id: UUID = Field(description="UUIDv7: unique and time-ordered")
    type: str = Field(description="the event type, e.g. CallReceived")
    schema_version: int = Field(ge=1)
    source: str = Field(description="producing service: hotline, aid or donation")
    stream_id: str = Field(description="the aggregate, e.g. call-0192...")
    version: int = Field(ge=1, description="the aggregate's version after this event")
    position: int = Field(ge=1, description="the source's commit-order position")
    occurred_at: AwareDatetime = Field(description="business time; 'as of' reports use it")
    recorded_at: AwareDatetime = Field(description="when the source's store committed it")
    correlation_id: UUID
    causation_id: UUID | None = None
    actor: Actor
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{16}:[A-Za-z0-9+/]{86}==$",  # key id: Ed25519 signature, base64
        description="on every few events: the source's signature of this hash "
        "(`shared.contracts.signatures`), left out of the hash",
    )
    data: D

    @model_serializer(mode="wrap")
    def _unsigned_without_sig(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Most events carry no signature, and their canonical bytes no "sig" member.
        body: dict[str, Any] = dump(self)
        if body.get("sig") is None:
            body.pop("sig", None)
        return body


@dataclass(frozen=True, slots=True)
class Context:
    """Who asked for a change and why: copied onto every event the change records."""

    actor: str = SYSTEM
    correlation_id: UUID = field(default_factory=lambda: uuid7())
    causation_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event an aggregate decided on, not yet stored: payload plus its business time."""

    data: Event
    occurred_at: datetime

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
            raise ValueError(f"{self.data.type_name()}: occurred_at must be timezone-aware")


# -- the canonical bytes and the hash chain: the one implementation --------------------------
# The store seals (`sealed`), the relay publishes the bytes unchanged, and the consumers and
# the audit check them (`hashes_to` fast, `verify_link` exactly): all through these.

_SORTED = orjson.OPT_SORT_KEYS
HASH_MEMBER = b',"hash":"'
SIG_MEMBER = b',"sig":"'
_UNHASHED = frozenset({"hash", "sig"})


def canonical_bytes(body: dict[str, Any]) -> bytes:
    """The canonical form: JSON with sorted keys and no spaces, UTF-8."""
    return orjson.dumps(body, option=_SORTED)


def hash_of(body: dict[str, Any]) -> str:
    """The hash of an envelope body: sha256 of its canonical bytes without the hash field
    (nor the signature of that hash, when it has one)."""
    unhashed = {k: v for k, v in body.items() if k not in _UNHASHED}
    return hashlib.sha256(canonical_bytes(unhashed)).hexdigest()


def seal(body: dict[str, Any]) -> bytes:
    """Set ``body["hash"]`` and return the canonical bytes that go into the store and on the bus."""
    body["hash"] = hash_of(body)
    return canonical_bytes(body)


def sealed(
    actor: str,
    causation_id: str | None,
    correlation_id: str,
    data: dict[str, Any],
    event_id: str,
    occurred_at: str,
    position: int,
    prev_hash: str,
    recorded_at: str,
    schema_version: int,
    source: str,
    stream_id: str,
    type_name: str,
    version: int,
) -> tuple[str, bytes]:
    """`seal` of a new event given its fields (arguments in the body's key order, ``data``
    its JSON-ready payload): its hash and bytes, without building the body. The bytes are
    made in two halves around ``"hash"``, the members sorting before it and those after, so
    the sorted body is dumped once instead of twice (with and without its hash): the event
    store's hot path, held to `seal` by the tests."""
    before = orjson.dumps(
        {
            "actor": actor,
            "causation_id": causation_id,
            "correlation_id": correlation_id,
            "data": orjson.Fragment(orjson.dumps(data, option=_SORTED)),
            "event_id": event_id,
        }
    )[:-1]
    after = orjson.dumps(
        {
            "occurred_at": occurred_at,
            "position": position,
            "prev_hash": prev_hash,
            "recorded_at": recorded_at,
            "schema_version": schema_version,
            "source": source,
            "stream_id": stream_id,
            "type": type_name,
            "version": version,
        }
    )[1:]
    digest = hashlib.sha256(b"%s,%s" % (before, after)).hexdigest()
    return digest, b'%s,"hash":"%s",%s' % (before, digest.encode(), after)


def without_signature(raw: bytes) -> bytes:
    """``raw`` less its ``sig`` member, if it has one (it follows ``hash``, among the scalars,
    and its value holds no quote)."""
    at = raw.rfind(SIG_MEMBER)
    if at < 0:
        return raw
    end = raw.index(b'"', at + len(SIG_MEMBER))
    return raw[:at] + raw[end + 1 :]


def hashes_to(data: bytes, expected: str) -> bool:
    """Whether an event's bytes as they came, minus their top-level ``"hash"`` member, hash to
    ``expected``: the check of canonical bytes without decoding them again. In canonical
    bytes that member is the last ``,"hash":"`` (only scalars follow it, and a quote inside
    a string is escaped). False is not a verdict: bytes that are not canonical (re-serialised,
    indented) fail it too, and only `verify_link` on the decoded body decides."""
    data = without_signature(data)
    at = data.rfind(HASH_MEMBER)
    end = at + len(HASH_MEMBER) + 64
    if (
        at < 0
        or data[at + len(HASH_MEMBER) : end] != expected.encode()
        or data[end : end + 1] != b'"'
    ):
        return False
    return hashlib.sha256(data[:at] + data[end + 1 :]).hexdigest() == expected


class BrokenChain(Exception):
    """An event whose hash or link does not match: altered, dropped or inserted."""


def verify_link(body: dict[str, Any], prev_hash: str) -> str:
    """Check one event against its predecessor's hash; return its own hash for the next link."""
    where = f"{body.get('source')} position {body.get('position')} ({body.get('event_id')})"
    if body.get("prev_hash") != prev_hash:
        raise BrokenChain(f"{where}: prev_hash does not match the previous event's hash")
    if hash_of(body) != body.get("hash"):
        raise BrokenChain(f"{where}: content does not match its hash (altered)")
    return str(body["hash"])


def verify_bytes(data: bytes, prev_hash: str, envelope: Envelope[Any]) -> str:
    """`verify_link` for an event as it came off the bus, ``envelope`` being those bytes
    decoded: the fast way when its ``prev_hash`` is the one expected and its bytes are
    canonical (no second decode), else the exact way, which also words what is broken.
    Returns its hash for the next link; raises `BrokenChain`."""
    if envelope.prev_hash == prev_hash and hashes_to(data, envelope.hash):
        return envelope.hash
    return verify_link(orjson.loads(data), prev_hash)


# UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter and 62 random bits,
# monotonic within this process so ids sort in the order they were made. The random bits come
# from a PRNG seeded from the OS: ids must be unique and ordered, not unguessable, and
# os.urandom per id was a third of the cost (two ids per recorded call).
_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0
_random = random.Random(os.urandom(32))
# A forked child must not repeat its parent's sequence (same millisecond, same counter).
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))
_VERSION_AND_VARIANT = (0x7 << 76) | (0b10 << 62)


def _uuid7_int() -> int:
    global _last_ms, _counter
    with _uuid_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        else:
            _last_ms = ms
            _counter = 0
        return (ms << 80) | _VERSION_AND_VARIANT | (_counter << 64) | _random.getrandbits(62)


def uuid7() -> UUID:
    return UUID(int=_uuid7_int())


def uuid7_str() -> str:
    """``str(uuid7())`` without the UUID object, which cost about half of it: every recorded
    call takes two (its aggregate's id and its event's). Hex through bytes: a fifth cheaper
    than formatting the 128-bit int."""
    h = _uuid7_int().to_bytes(16, "big").hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
