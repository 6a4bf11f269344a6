"""Each producing service signs its history: Ed25519 signatures over the hash chain's head.

Why the chain's head and not every event: an event's ``hash`` covers its bytes and its
``prev_hash``, so a signature over the hash at position P vouches for every event up to P of
a chain checked link by link, as consumers and the audit check it. Signing every event cost
about 25 µs and verifying it 60–170 µs here, more than folding it; one signature every
`EVERY` events (and on the last event of every append) costs a fraction of a microsecond an
event at either end.

Where: in the event's own bytes, as ``"sig": "<key id>:<base64 signature>"``, made when the
store appends (it is part of the record: at rest, on the bus, after a republish, the same),
and left out of the hash like ``hash`` itself. What is signed: ``kapok-sig\\n<source>\\n
<position>\\n<hash>``.

Keys: a source may have several over its life (rotation), each valid from a position on
(`Ring`): a signature by a key is good for the positions from its ``from`` up to the next key's
``from``, so a retired key signs nothing new and older events still verify.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from shared.contracts.envelope import HASH_MEMBER, SIG_MEMBER

EVERY = 500
"""At most this many events of a source in a row without a signature: a consumer holds at most
as many back while it waits for the one that covers them (its batches are larger)."""

_SOURCE_MEMBER = b',"source":"'


def signed_message(source: str, position: int, event_hash: str) -> bytes:
    return f"kapok-sig\n{source}\n{position}\n{event_hash}".encode()


def signature_in(raw: bytes) -> tuple[str, str] | None:
    """(hash, sig) of an event's bytes as published, if it is signed; found without
    decoding (both are among the scalars after ``data``)."""
    at = raw.rfind(SIG_MEMBER)
    if at < 0:
        return None
    start = at + len(SIG_MEMBER)
    sig = raw[start : raw.index(b'"', start)].decode("ascii", "replace")
    hashed = raw.rfind(HASH_MEMBER, 0, at) + len(HASH_MEMBER)
    return raw[hashed : hashed + 64].decode("ascii", "replace"), sig


def key_id(public: bytes) -> str:
    """A short, stable name for a verification key (the first 16 hex digits of its SHA-256)."""
    return hashlib.sha256(public).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Signer:
    """A source's signing keys, each from the position it takes over at, as its event store
    uses them."""

    source: str
    keys: tuple[tuple[int, SigningKey], ...]  # (valid from, key), by position
    every: int = EVERY

    def key_at(self, position: int) -> SigningKey:
        chosen = self.keys[0][1]
        for valid_from, key in self.keys:
            if valid_from <= position:
                chosen = key
        return chosen

    def sign(self, raw: bytes, position: int, event_hash: str) -> bytes:
        """``raw`` (an event's canonical bytes, sealed) with its ``sig`` member, in its sorted
        place: the members after ``hash`` are scalars and ``sig`` sorts just before
        ``source``."""
        key = self.key_at(position)
        signature = key.sign(signed_message(self.source, position, event_hash)).signature
        kid = key_id(bytes(key.verify_key))
        member = b'%s%s:%s"' % (SIG_MEMBER, kid.encode(), base64.b64encode(signature))
        at = raw.rfind(_SOURCE_MEMBER)
        return raw[:at] + member + raw[at:]


@dataclass(frozen=True, slots=True)
class RingKey:
    key_id: str
    verify: VerifyKey
    valid_from: int  # the first position it may sign


class Ring:
    """Every source's verification keys, each from the position it took over at. ``reload``
    (the ring's file read again, `shared.signing`) is asked once for a key it does not know:
    a key made after this process started."""

    def __init__(
        self,
        keys: Mapping[str, Sequence[RingKey]],
        reload: Callable[[], Mapping[str, Sequence[RingKey]]] | None = None,
    ) -> None:
        self._keys = _by_position(keys)
        self._reload = reload

    def sources(self) -> list[str]:
        return sorted(self._keys)

    def check(self, source: str, position: int, event_hash: str, sig: str) -> str | None:
        """None if ``sig`` is ``source``'s signature of the event at ``position`` with hash
        ``event_hash`` by the key valid there; else why not, in words."""
        kid, _, encoded = sig.partition(":")
        keys = self._keys.get(source, [])
        if self._reload is not None and all(key.key_id != kid for key in keys):
            self._keys = _by_position(self._reload())
            keys = self._keys.get(source, [])
        for index, key in enumerate(keys):
            if key.key_id != kid:
                continue
            until = keys[index + 1].valid_from if index + 1 < len(keys) else None
            if position < key.valid_from or (until is not None and position >= until):
                return f"signed with {source}'s key {kid}, not valid at position {position}"
            try:
                key.verify.verify(
                    signed_message(source, position, event_hash), base64.b64decode(encoded)
                )
            except (BadSignatureError, ValueError):
                return f"the signature does not verify with {source}'s key {kid}"
            return None
        return f"signed with a key {kid or '(none)'} that is not {source}'s"


def _by_position(keys: Mapping[str, Sequence[RingKey]]) -> dict[str, list[RingKey]]:
    return {source: sorted(ks, key=lambda k: k.valid_from) for source, ks in keys.items()}
