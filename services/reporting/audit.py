"""Audit replay: the figures recomputed from the bus alone, with every hash link checked.

Reads each source's stream from its first message on ephemeral consumers (no acks: an
auditor changes nothing on the server), batched pull requests on one inbox, the deliveries
taken straight off the connection's read buffer (`shared/bus/frames.py`). Each message is
re-hashed against its predecessor (`verify_link`) and its position checked against its stream
sequence, so an altered, dropped or inserted event is named by source and position. The events
are folded in memory by the same `Fold` the live consumer uses, and the report is compared
figure by figure with the live service's `/api/report` for the same as-of day. The longest
stream whose fold keeps no state is folded in stretches by several processes side by side
(`services/reporting/slices.py`), added up in stream order with each seam's link checked.

``known_at`` cuts each stream at the last message the server had stored by then (its own
timestamp), so a report can be reproduced as it could have been known at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import Synchronized
from typing import Any, NamedTuple, TextIO

import nats
import orjson
from nats.aio.client import Client as NATS
from nats.js import api

from services.reporting.domain.fold import ORDERED_SOURCES, Fold, Key, totals
from services.reporting.domain.report import differences, report
from services.reporting.slices import (
    MIN_SHARE,
    Claims,
    Helpers,
    Plan,
    Slice,
    cpu_and_peak,
    processes_wanted,
)
from shared.bus.acks import stream_seq_and_time
from shared.bus.frames import Frame, subscribe_frames, unsubscribe_frames
from shared.bus.naming import Naming
from shared.collector import tune_gc
from shared.contracts import GENESIS, REGISTRY, BrokenChain, UndecodableEvent, verify_link
from shared.contracts.envelope import Envelope, hashes_to

Progress = Callable[[str, int, int], None]


@dataclass
class SourceAudit:
    source: str
    events: int = 0  # read from the stream (within known_at)
    folded: int = 0
    undecodable: int = 0  # the live consumer dead-letters these: not counted either side
    broken: str | None = None  # the first broken link, if any
    head: str = GENESIS  # the last verified hash
    # A stretch that starts mid-stream takes its first event's prev_hash on trust; the link is
    # checked when the stretches are put together (`_put_together`).
    opened_with: str | None = None
    opening: str = ""  # that first event, named as a broken link names it
    cut: bool = False  # stopped at known_at: nothing after this was published by then


class DayKey(NamedTuple):
    """A counter without its dimensions: what the report sums (`totals` reads these too)."""

    metric: str
    day: date


@dataclass
class Replay:
    """``days``: every metric's increments per business day, all the report needs, so the
    replay's memory is bounded by metrics × days however many events it reads. The fold's
    full-dimension increments are kept in ``increments`` only when asked for (``detail``:
    the tests compare them with the live counters row by row)."""

    fold: Fold = field(default_factory=Fold)
    sources: dict[str, SourceAudit] = field(default_factory=dict)
    seconds: float = 0.0
    days: defaultdict[DayKey, int] = field(default_factory=lambda: defaultdict(int))
    detail: bool = False
    increments: defaultdict[Key, int] = field(default_factory=lambda: defaultdict(int))
    # The other processes' CPU seconds and peak resident KiB, one pair per stretch.
    elsewhere: list[tuple[float, int]] = field(default_factory=list)

    @property
    def broken(self) -> list[str]:
        return [s.broken for s in self.sources.values() if s.broken]

    def report(self, as_of: date | None, label: date) -> dict[str, object]:
        return report(label, totals(self.days, as_of))

    def merge(self) -> None:
        """Move the fold's increments so far into ``days`` (and ``increments``)."""
        days, new = self.days, tuple.__new__  # positional: the named tuple's __new__ is Python
        for key, value in self.fold.increments.items():
            days[new(DayKey, key[:2])] += value
        if self.detail:
            for key, value in self.fold.increments.items():
                self.increments[key] += value
        self.fold.increments.clear()


@dataclass
class Part:
    """One stretch's findings and sums, as a process sends them back."""

    audit: SourceAudit
    days: dict[DayKey, int]
    increments: dict[Key, int]


async def replay(
    nc: NATS,
    naming: Naming,
    sources: Sequence[str],
    *,
    known_at: datetime | None = None,
    progress: Progress | None = None,
    batch: int = 2000,
    detail: bool = False,
    processes: int | None = None,
    min_share: int = MIN_SHARE,
    stretch: int | None = None,
    claim_here: bool = True,
    nats_url: str | None = None,
) -> Replay:
    """Replay ``sources`` on up to ``processes`` processes (default: one per core; see
    services/reporting/slices.py), the others connecting to ``nats_url`` (default: where
    ``nc`` is connected). ``claim_here=False``: this process reads only the whole streams
    and leaves every stretch to the others."""
    started = time.perf_counter()
    js = nc.jetstream()
    lasts = {s: int((await js.stream_info(naming.stream(s))).state.last_seq) for s in sources}
    plan = Plan.of(
        lasts,
        processes_wanted(processes),
        whole=ORDERED_SOURCES,
        min_share=min_share,
        stretch=stretch,
    )
    claims = Claims(plan.stretches)
    helpers: Helpers | None = None
    if plan.processes > 1:
        url = nats_url or nc.connected_url.geturl()
        args = (url, naming, known_at, batch, detail)
        helpers = Helpers(plan.processes - 1, claims, _replay_in_process, *args)
    cut = plan.stretches[0].source if plan.stretches else None
    elsewhere: list[tuple[float, int]] = []  # the helpers' CPU seconds and peak KiB
    here = dict.fromkeys(sources, 0)  # events read by this process, by source

    def show(source: str, done: int) -> None:
        here[source] = done
        if progress:
            there = helpers.read if helpers and source == cut else 0
            progress(source, done + there, lasts[source])

    mine: Iterable[Slice] = plan.whole
    if claim_here or helpers is None:
        mine = itertools.chain(plan.whole, iter(claims.claim, None))
    try:
        parts = await _replay_all(nc, naming, mine, known_at, batch, detail, show)
        if helpers is not None:
            waiting = asyncio.ensure_future(helpers.results())
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=1.0)
                if cut:
                    show(cut, here[cut])
            for theirs, cpu_seconds, peak_kib in waiting.result():
                parts.update(theirs)
                elsewhere.append((cpu_seconds, peak_kib))
    finally:
        if helpers is not None:
            helpers.stop()
    result = _put_together(sources, plan.slices, parts, detail)
    result.elsewhere = elsewhere
    result.seconds = time.perf_counter() - started
    if progress:
        for source, audit in result.sources.items():
            progress(source, audit.events, lasts[source])
    return result


def replay_consumer(first: int = 1) -> api.ConsumerConfig:
    """The replay's reader: ephemeral, from stream sequence ``first``, nothing acked (an
    auditor changes nothing on the server), gone a minute after it stops asking."""
    return api.ConsumerConfig(
        deliver_policy=api.DeliverPolicy.ALL if first <= 1 else api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=None if first <= 1 else first,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=60.0,
        mem_storage=True,
    )


def _put_together(
    sources: Sequence[str], slices: list[Slice], parts: dict[Slice, Part], detail: bool
) -> Replay:
    """The stretches added up source by source, in stream order, as if one process had read
    each stream: the link between two stretches is checked here; after a broken link events
    are still counted but nothing more is folded; after the known_at cut nothing counts."""
    result = Replay(detail=detail)
    for source in sources:
        audit = result.sources[source] = SourceAudit(source)
        trusted = True
        for piece in sorted((s for s in slices if s.source == source), key=lambda s: s.first):
            part = parts[piece]
            found = part.audit
            audit.events += found.events
            if trusted and piece.first > 1 and found.events and found.opened_with != audit.head:
                audit.broken = (
                    f"{found.opening}: prev_hash does not match the previous event's hash"
                )
                trusted = False
            if trusted:
                audit.folded += found.folded
                audit.undecodable += found.undecodable
                audit.head = found.head
                for key, value in part.days.items():
                    result.days[key] += value
                for key, value in part.increments.items():
                    result.increments[key] += value
                if found.broken:
                    audit.broken, trusted = found.broken, False
            if found.cut:
                break
    return result


def _replay_in_process(
    url: str,
    naming: Naming,
    known_at: datetime | None,
    batch: int,
    detail: bool,
    claims: Claims,
    read: Synchronized[int],
    connection: Connection,
) -> None:
    """A process of its own claiming stretches until none is left (`Helpers`' target): sends
    its parts by stretch, its CPU seconds and its peak resident KiB."""

    async def run() -> tuple[dict[Slice, Part], float, int]:
        async def failed(error: Exception) -> None:
            pass  # what ends the process is sent to the parent, which names it

        # A process that cannot read fails the replay at once rather than wait for the bus.
        nc = await nats.connect(
            url,
            name="kapok-audit-stretches",
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=5,
            error_cb=failed,
        )
        tune_gc()

        def show(_: str, done: int) -> None:  # it reads the cut stream alone
            read.value = done

        try:
            claimed = iter(claims.claim, None)
            parts = await _replay_all(nc, naming, claimed, known_at, batch, detail, show)
        finally:
            await nc.close()
        return (parts, *cpu_and_peak())

    try:
        connection.send(asyncio.run(run()))
    except BaseException as error:  # the parent names it; nothing may be left unsaid
        connection.send(("error", repr(error)))
    finally:
        connection.close()


async def _replay_all(
    nc: NATS,
    naming: Naming,
    pieces: Iterable[Slice],
    known_at: datetime | None,
    batch: int,
    detail: bool,
    show: Callable[[str, int], None],
) -> dict[Slice, Part]:
    """Each piece in turn (a whole stream, or stretches as they are claimed); ``show`` hears
    the events of each source read so far."""
    parts: dict[Slice, Part] = {}
    read: defaultdict[str, int] = defaultdict(int)
    for piece in pieces:

        def now(source: str, done: int, before: int = read[piece.source]) -> None:
            show(source, before + done)

        parts[piece] = await _replay_slice(nc, naming, piece, known_at, batch, detail, now)
        read[piece.source] += parts[piece].audit.events
        show(piece.source, read[piece.source])
    return parts


async def _replay_slice(
    nc: NATS,
    naming: Naming,
    piece: Slice,
    known_at: datetime | None,
    batch: int,
    detail: bool,
    progress: Callable[[str, int], None],
) -> Part:
    """Batched pull requests on one inbox, as the runner pulls: the sink only collects
    (sequence, timestamp, bytes) and wakes the loop when a request is over; the next request
    goes out before a batch is checked and folded, so the server streams while Python
    works."""
    js = nc.jetstream()
    stream = naming.stream(piece.source)
    audit = SourceAudit(piece.source)
    result = Replay(detail=detail)
    cutoff_ns = int(known_at.timestamp() * 1e9) if known_at else None
    consumer = await js.add_consumer(stream, replay_consumer(piece.first))
    name = consumer.name
    inbox = nc.new_inbox()
    buffer: list[tuple[int, int, bytes]] = []  # (stream sequence, server timestamp, bytes)
    over = asyncio.Event()  # the request in flight is done: its batch, a status, or the end
    last = piece.last
    state = {"in_request": 0, "asked": 0}

    def on_frames(frames: list[Frame]) -> None:
        for _, reply, data, _ in frames:
            if not reply:  # a status: the request is over
                over.set()
                continue
            seq, stamp = stream_seq_and_time(reply)
            buffer.append((seq, stamp, data))
            state["in_request"] += 1
            # The stretch's last message ends the wait too: a request for more than remain
            # would otherwise only end when it expires.
            if state["in_request"] >= state["asked"] or seq >= last:
                over.set()

    sub = await subscribe_frames(nc, inbox, on_frames)
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"
    expected = piece.first
    reported = time.monotonic()

    async def ask(remaining: int) -> None:
        state["in_request"], state["asked"] = 0, min(batch, remaining)
        over.clear()
        request = orjson.dumps({"batch": state["asked"], "expires": int(5e9)})
        await nc.publish(subject, request, reply=inbox)

    try:
        await ask(last - expected + 1)
        while expected <= last:
            await asyncio.wait_for(over.wait(), 10.0)
            taken = buffer[:]
            buffer.clear()
            if expected + len(taken) <= last:
                await ask(last - expected - len(taken) + 1)
                # Out on the wire now, not when the loop next idles: checking the batch
                # below never yields, and the server would wait for the whole of it.
                await nc.flush()
            if taken and audit.events == 0 and piece.first > 1:
                _open_mid_stream(audit, taken[0][2])
            for seq, stamp, data in taken:
                if cutoff_ns is not None and stamp > cutoff_ns:
                    audit.cut = True
                    return _part(audit, result)  # published after known_at, as all after it
                expected = seq + 1
                audit.events += 1
                if audit.broken is None:
                    _check_and_fold(audit, result.fold, seq, data)
                if expected > last:
                    break
            result.merge()
            if time.monotonic() - reported > 1.0:
                reported = time.monotonic()
                progress(piece.source, expected - piece.first)
        return _part(audit, result)
    finally:
        await unsubscribe_frames(nc, sub)
        # Should this fail, the consumer expires on its own after inactive_threshold.
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)


def _part(audit: SourceAudit, result: Replay) -> Part:
    result.merge()
    return Part(audit, dict(result.days), dict(result.increments))


def _open_mid_stream(audit: SourceAudit, data: bytes) -> None:
    """Take a stretch's first link on trust (checked when the stretches are put together)."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        audit.opening = f"{audit.source}: the first event of a stretch is not a JSON object"
        return
    audit.head = audit.opened_with = str(body.get("prev_hash"))
    audit.opening = f"{body.get('source')} position {body.get('position')} ({body.get('event_id')})"


def _check_and_fold(audit: SourceAudit, fold: Fold, seq: int, data: bytes) -> None:
    """The fast way first: decode once, and re-hash the bytes as they are minus their
    ``"hash"`` member (what the producer hashed, when the bytes are canonical). Anything
    else, a broken link or bytes that are not canonical, goes the exact way, which also
    words the finding."""
    try:
        envelope = REGISTRY.decode(data)
    except UndecodableEvent:
        envelope = None
    if (
        envelope is not None
        and envelope.prev_hash == audit.head
        and envelope.position == seq
        and hashes_to(data, envelope.hash)
    ):
        audit.head = envelope.hash
        fold.apply(envelope)
        audit.folded += 1
        return
    _check_and_fold_exactly(audit, fold, seq, data, envelope)


def _check_and_fold_exactly(
    audit: SourceAudit, fold: Fold, seq: int, data: bytes, envelope: Envelope[Any] | None
) -> None:
    try:
        body = orjson.loads(data)
        if not isinstance(body, dict):
            raise BrokenChain(f"{audit.source} stream sequence {seq}: not a JSON object")
        audit.head = verify_link(body, audit.head)
        if body.get("position") != seq:
            raise BrokenChain(
                f"{audit.source} stream sequence {seq}: holds position {body.get('position')}"
                " (an event dropped or inserted before it)"
            )
    except (BrokenChain, orjson.JSONDecodeError) as error:
        audit.broken = str(error)
        return
    if envelope is None:
        audit.undecodable += 1
        return
    fold.apply(envelope)
    audit.folded += 1


# -- the command ------------------------------------------------------------------------


def print_progress(stream: TextIO = sys.stderr) -> Progress:
    def show(source: str, done: int, total: int) -> None:
        print(f"  {source}: {done:,}/{total:,} events", file=stream, flush=True)

    return show


async def fetch_live(url: str, as_of: date | None) -> dict[str, Any]:
    import httpx

    params = {"as_of": as_of.isoformat()} if as_of else {}
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        response = await http.get("/api/report", params=params)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


async def audit_replay(
    nc: NATS,
    naming: Naming,
    sources: Sequence[str],
    *,
    as_of: date | None,
    known_at: datetime | None,
    live_url: str | None,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The whole audit; returns the exit status: 0 all proven, 1 a broken chain or a
    difference with the live figures, 2 the live service could not be asked."""
    from services.reporting.entrypoints.http import today

    result = await replay(nc, naming, sources, known_at=known_at, progress=print_progress(err))
    body = result.report(as_of, as_of or today())
    print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode(), file=out)
    for audit in result.sources.values():
        print(
            f"{audit.source}: {audit.events:,} events read, {audit.folded:,} folded, "
            f"{audit.undecodable} undecodable, chain "
            + ("BROKEN: " + audit.broken if audit.broken else "intact"),
            file=err,
        )
    status = 1 if result.broken else 0
    if live_url:
        try:
            live = await fetch_live(live_url, as_of)
        except Exception as error:
            print(f"cannot read the live report at {live_url}: {error!r}", file=err)
            return 2
        diffs = differences(body["figures"], live["figures"])  # type: ignore[arg-type]
        for line in diffs:
            print(f"DIFFERENT {line}", file=err)
        if diffs:
            status = 1
        else:
            print(f"live report at {live_url} agrees on every figure", file=err)
    return status
