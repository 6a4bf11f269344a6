"""The audit replay's reader of one source's stream, message by message: what it folds, and
what it names as a finding. Pure: no bus, no database (services/reporting/audit.py reads).

A source's events form a chain: position 1, 2, 3, … each with its predecessor's hash as
``prev_hash`` (shared/contracts/envelope.py). The reader follows that chain, not the stream's
sequences, and reads on past whatever is not of it, naming each such message by stream,
sequence, subject and reason:

- bytes that are not a Kapok event at all (``hello``), or another source's event;
- a repeat of a position already read;
- an event whose content does not match its own hash (altered): the chain goes on past it
  (its successor links to it), it is not folded;
- an event whose ``prev_hash`` is not the hash of the last event read. It is held until the
  next event of the source shows what it was: if that one links to the last event read, the
  held one was not of the chain (a forgery, a stray); if it links to the held one, the chain
  broke before it (events lost or altered there) and the reader goes on from it, folding it;
- an event of the chain that does not decode or cannot be folded (a sum the fold cannot
  make): the chain goes on, the event is not counted.

Everything else is folded, so the figures count every event that is the source's at its
place in the chain, whatever else was published onto the stream.

Where the producers' verification keys are known (`shared.signing`: the data directory's
``signing/ring.json``, or ``KAPOK_SIGNING_DIR``), only what a signature of its source's key
covers counts, as in the live fold (shared/contracts/signatures.py): an event with a bad
signature, or with none where its source always signs, is a finding named forged and not
folded; the events after the last good signature are folded aside (``tail``) and counted when
the next one covers them (in a later stretch, when the stream is read in stretches:
audit.py), and those no signature covers at the end of the stream are a finding, not
counted.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from services.reporting.domain.fold import Fold
from shared import signing
from shared.contracts import GENESIS, REGISTRY, BrokenChain, UndecodableEvent
from shared.contracts.envelope import Envelope, hash_of, verify_bytes
from shared.contracts.signatures import EVERY, Ring

KEPT = 100
"""Findings kept (and printed) per source; beyond them only their number."""


class Finding(NamedTuple):
    stream: str
    seq: int
    subject: str
    reason: str

    def __str__(self) -> str:
        return f"{self.stream} sequence {self.seq} ({self.subject}): {self.reason}"


@dataclass(frozen=True, slots=True)
class _Held:
    """An intact event whose ``prev_hash`` is not the last event's hash, until the next
    event of the source tells whether the chain goes on from it."""

    seq: int
    subject: str
    position: int
    hash: str
    name: str
    envelope: Envelope[Any] | None
    why: str  # why it does not decode, if it does not


@dataclass
class SourceAudit:
    source: str
    stream: str = ""
    events: int = 0  # messages read from the stream (within known_at)
    folded: int = 0
    undecodable: int = 0  # events of the chain that do not decode: findings, not counted
    findings: list[Finding] = field(default_factory=list)  # the first `KEPT`
    found: int = 0  # every finding, also those not kept
    head: str = GENESIS  # the hash of the last event of the chain read
    position: int = 0  # and its position
    held: _Held | None = None
    # A stretch that starts mid-stream takes its first event's link on trust: (prev_hash,
    # position before it), checked when the stretches are put together (audit.py).
    opened_with: tuple[str, int] | None = None
    cut: bool = False  # stopped at known_at: nothing after this was published by then
    signed: int = 0  # the position of the last event whose signature verified
    tail: Fold | None = None  # folded since: counted once a signature covers it
    tail_first: int = 0  # the position of the first event in ``tail``
    tail_events: int = 0

    def find(self, seq: int, subject: bytes | str, reason: str) -> None:
        self.found += 1
        if len(self.findings) < KEPT:
            if isinstance(subject, bytes):
                subject = subject.decode(errors="replace")
            self.findings.append(Finding(self.stream, seq, subject, reason))

    @property
    def clean(self) -> bool:
        return self.found == 0 and self.held is None


def check_and_fold(audit: SourceAudit, fold: Fold, seq: int, subject: bytes, data: bytes) -> None:
    """One message of the source's stream. The fast way first: decode once and, when it is
    the chain's next event, check its link as the consumers do (`verify_bytes`: its bytes
    re-hashed as they are, minus their hash). Anything else goes the exact way, which judges
    and words it."""
    try:
        envelope = REGISTRY.decode(data)
    except UndecodableEvent as error:
        _check_exactly(audit, fold, seq, subject, data, None, str(error))
        return
    if (
        audit.held is None
        and envelope.position == audit.position + 1
        and envelope.source == audit.source
    ):
        try:
            audit.head = verify_bytes(data, audit.head, envelope)
        except BrokenChain:
            pass
        else:
            audit.position += 1
            _fold(audit, fold, seq, subject, envelope)
            return
    _check_exactly(audit, fold, seq, subject, data, envelope, "")


def open_mid_stream(audit: SourceAudit, data: bytes) -> None:
    """A stretch's first message: its link taken on trust, checked at the seam. Anything
    but an event of the source leaves it unopened, which fails the seam check."""
    body = _event_body(data)
    if body is not None and body["source"] == audit.source:
        audit.head, audit.position = body["prev_hash"], body["position"] - 1
        audit.opened_with = (audit.head, audit.position)


def settle(audit: SourceAudit) -> None:
    """The end of what is read: an event still held is not of the chain (nothing links to
    it)."""
    held, audit.held = audit.held, None
    if held is not None:
        audit.find(
            held.seq,
            held.subject,
            f"{held.name}: prev_hash does not match the previous event's hash, and no event"
            " after it links to it: not of the chain, not folded",
        )


def _check_exactly(
    audit: SourceAudit,
    fold: Fold,
    seq: int,
    subject: bytes,
    data: bytes,
    envelope: Envelope[Any] | None,
    why: str,
) -> None:
    body = _event_body(data)
    if body is None:
        audit.find(seq, subject, f"not a Kapok event: {why or 'not an event envelope'}")
        return
    source, position = body["source"], body["position"]
    name = f"{source} position {position} ({body.get('event_id')})"
    if source != audit.source:
        audit.find(seq, subject, f"{name}: another source's event on the {audit.source} stream")
        return
    if position <= audit.position:
        audit.find(seq, subject, f"{name}: a repeat of a position already read, not folded")
        return
    intact = hash_of(body) == body["hash"]
    held = audit.held
    if held is not None:
        audit.held = None
        if intact and body["prev_hash"] == held.hash and position == held.position + 1:
            # Its successor links to it: the chain broke before the held event, not at it.
            audit.find(
                held.seq,
                held.subject,
                f"{held.name}: prev_hash does not match the hash of {source} position "
                f"{audit.position}: what came between is missing or altered; read on from it",
            )
            audit.head, audit.position = held.hash, held.position
            _take(audit, fold, held.seq, held.subject, held.envelope, held.why)
        else:
            audit.find(
                held.seq,
                held.subject,
                f"{held.name}: prev_hash does not match the previous event's hash, and the"
                " next event does not link to it: not of the chain, not folded",
            )
    if body["prev_hash"] == audit.head and position == audit.position + 1:
        audit.head, audit.position = body["hash"], position
        if intact:
            _take(audit, fold, seq, subject, envelope, why)
        else:
            audit.find(seq, subject, f"{name}: content does not match its hash (altered)")
        return
    if intact:
        audit.held = _Held(seq, subject.decode(errors="replace"), position, body["hash"], name,
                           envelope, why)  # fmt: skip
        return
    audit.find(
        seq, subject, f"{name}: prev_hash does not match the previous event's hash (altered)"
    )


def _take(
    audit: SourceAudit,
    fold: Fold,
    seq: int,
    subject: bytes | str,
    envelope: Envelope[Any] | None,
    why: str,
) -> None:
    """An event of the chain: folded if it can be."""
    if envelope is None:
        audit.undecodable += 1
        audit.find(seq, subject, f"an event of the chain that does not decode: {why}")
        return
    _fold(audit, fold, seq, subject, envelope)


def _fold(
    audit: SourceAudit, fold: Fold, seq: int, subject: bytes | str, envelope: Envelope[Any]
) -> None:
    ring = signing_ring()
    covered = True
    if ring is not None:
        name = f"{envelope.source} position {envelope.position} ({envelope.event_id})"
        if envelope.sig is not None:
            reason = ring.check(envelope.source, envelope.position, envelope.hash, envelope.sig)
            if reason is not None:
                audit.find(seq, subject, f"{name}: forged: {reason}; not folded")
                return
        elif envelope.position % EVERY == 0:
            audit.find(seq, subject, f"{name}: forged: unsigned where its source always signs")
            return
        else:
            covered = False
            if audit.tail is None:
                audit.tail = Fold(open_requests=fold.open_requests)
                audit.tail_first = envelope.position
            fold = audit.tail
    try:
        fold.apply(envelope)
    except Exception as error:  # whatever the fold cannot make of it is a finding
        _take_back(fold, envelope)
        audit.find(
            seq,
            subject,
            f"{envelope.source} position {envelope.position} ({envelope.event_id}): "
            f"{envelope.type} cannot be folded: {error!r}",
        )
        return
    audit.folded += 1
    if not covered:
        audit.tail_events += 1
    elif ring is not None:
        audit.signed = envelope.position
        if audit.tail is not None:  # this signature covers what waited for one
            cover(audit, fold)


def cover(audit: SourceAudit, fold: Fold) -> None:
    """The events folded aside since the last signature counted in ``fold``."""
    tail, audit.tail, audit.tail_events = audit.tail, None, 0
    if tail is not None:
        for key, value in tail.increments.items():
            fold.increments[key] += value
        fold.revisions.extend(tail.revisions)


@functools.cache
def signing_ring() -> Ring | None:
    """The verification keys this process checks signatures with (read once): those of
    ``KAPOK_SIGNING_DIR``, which `kapok audit replay` sets from its data directory and its
    helper processes inherit; unset, none (signatures are not checked)."""
    directory = os.environ.get("KAPOK_SIGNING_DIR")
    return signing.ring(Path(directory)) if directory else None


def _take_back(fold: Fold, envelope: Envelope[Any]) -> None:
    """Undo what an `apply` that raised had added: the same handler on an empty fold raises
    at the same point having added the same. (The open aid requests change only after every
    computation that can raise, so they are as they were.)"""
    scratch = type(fold)(open_requests=dict(fold.open_requests))
    with contextlib.suppress(Exception):
        scratch.apply(envelope)
    for key, value in scratch.increments.items():
        fold.increments[key] -= value


def _event_body(data: bytes) -> dict[str, Any] | None:
    """The bytes as an event envelope's body, with what the chain needs well-typed, or None."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(body, dict)
        and isinstance(body.get("source"), str)
        and type(body.get("position")) is int
        and isinstance(body.get("prev_hash"), str)
        and isinstance(body.get("hash"), str)
    ):
        return body
    return None
