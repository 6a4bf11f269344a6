"""Audit replay: the figures recomputed from the bus alone, with every hash link checked.

Reads each source's stream from its first message on ephemeral consumers (no acks: an
auditor changes nothing on the server), batched pull requests on one inbox, the deliveries
taken straight off the connection's read buffer (`shared/bus/frames.py`). Each message is
checked against its predecessor's hash and position, following the source's hash
chain, and the replay reads on past whatever is not of it: each such message is a finding,
named by stream, sequence, subject and reason (services/reporting/audit_chain.py). The events
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
import os
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple, TextIO

import nats
import orjson
from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import NotFoundError, ServiceUnavailableError

from services.reporting.audit_chain import SourceAudit, check_and_fold, open_mid_stream, settle
from services.reporting.domain.fold import ORDERED_SOURCES, Fold, Key, totals
from services.reporting.domain.report import differences, report, units, yuan
from services.reporting.slices import (
    MIN_SHARE,
    Claims,
    Helpers,
    Plan,
    Slice,
    claimed,
    cpu_and_peak,
    processes_wanted,
    read_more,
)
from shared.bus.acks import stream_seq_and_time
from shared.bus.auth import AUDITOR
from shared.bus.frames import Frame, subscribe_frames, unsubscribe_frames
from shared.bus.naming import Naming
from shared.bus.servers import servers
from shared.collector import tune_gc
from shared.runtime import connect_options
from shared.settings import Settings

Progress = Callable[[str, int, int], None]


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
    def findings(self) -> int:
        return sum(s.found for s in self.sources.values())

    @property
    def broken(self) -> list[str]:
        """Every finding kept, worded (empty: every chain intact, every event folded)."""
        return [str(f) for s in self.sources.values() for f in s.findings]

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
    # What it folded after its last good signature (`audit_chain`): counted once a later
    # stretch's signature covers it.
    tail_days: dict[DayKey, int] = field(default_factory=dict)
    tail_increments: dict[Key, int] = field(default_factory=dict)


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
    lasts = await stream_lasts(nc, naming, sources)
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
    by_source = {
        source: [parts[s] for s in sorted(plan.slices, key=lambda s: s.first) if s.source == source]
        for source in sources
    }
    for source, pieces in by_source.items():
        if len(pieces) > 1 and not _joined(pieces):
            # A finding in a stretch or on a seam: the stream is read again whole, here, so
            # that what follows a finding is judged as one reader judges it. Stretches only
            # save time on the streams that hold nothing but their chain.
            whole = Slice(source, 1, lasts[source])
            by_source[source] = [
                await _replay_slice(nc, naming, whole, known_at, batch, detail, show)
            ]
    result = _put_together(naming, by_source, detail)
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
        # Named: the auditor's identity may create only consumers named in the subject
        # (README, "The bus's identities").
        name=f"audit_{uuid.uuid4().hex}",
        deliver_policy=api.DeliverPolicy.ALL if first <= 1 else api.DeliverPolicy.BY_START_SEQUENCE,
        opt_start_seq=None if first <= 1 else first,
        ack_policy=api.AckPolicy.NONE,
        inactive_threshold=60.0,
        mem_storage=True,
    )


class NoKapokStreams(Exception):
    """The bus holds none (or not all) of the streams the audit reads."""


async def stream_lasts(nc: NATS, naming: Naming, sources: Sequence[str]) -> dict[str, int]:
    """Each source's stream's last sequence; `NoKapokStreams` naming what was looked for,
    and where, when a stream is not there (a bus that is not Kapok's, another prefix)."""
    js = nc.jetstream()
    lasts, missing = {}, []
    for source in sources:
        try:
            lasts[source] = int((await js.stream_info(naming.stream(source))).state.last_seq)
        except NotFoundError:
            missing.append(naming.stream(source))
        except ServiceUnavailableError:  # no JetStream answers
            raise NoKapokStreams(
                f"no JetStream at {_where(nc)}: looked for the streams "
                f"{', '.join(naming.stream(s) for s in sources)} (is this Kapok's bus?)"
            ) from None
    if missing:
        looked_for = ", ".join(naming.stream(s) for s in sources)
        if len(missing) < len(sources):
            looked_for += f"; missing {', '.join(missing)}"
        raise NoKapokStreams(
            f"no Kapok streams at {_where(nc)}: looked for {looked_for} (is this Kapok's bus?"
            " --data-dir finds that of a running `kapok up`, --nats names one)"
        )
    return lasts


def _where(nc: NATS) -> str:
    url = nc.connected_url
    return url.geturl() if url is not None else "the NATS server"


def _joined(pieces: list[Part]) -> bool:
    """Whether a stream's stretches are clean and each opens where the one before ended."""
    before: SourceAudit | None = None
    for piece in pieces:
        found = piece.audit
        if not found.clean:
            return False
        if before and found.events and found.opened_with != (before.head, before.position):
            return False
        if found.cut:
            return True
        before = found
    return True


def _put_together(naming: Naming, by_source: dict[str, list[Part]], detail: bool) -> Replay:
    """Each source's pieces added up in stream order, as if one process had read the stream
    (a stream cut in stretches comes here only when they join, `_joined`); after the
    known_at cut nothing counts."""
    result = Replay(detail=detail)
    for source, pieces in by_source.items():
        audit = result.sources[source] = SourceAudit(source, naming.stream(source))
        waiting: list[Part] = []  # tails no signature has covered yet
        for part in pieces:
            found = part.audit
            if found.signed:
                for earlier in waiting:
                    _add(result, earlier.tail_days, earlier.tail_increments)
                waiting = []
            if found.tail_events:
                waiting.append(part)
            audit.events += found.events
            audit.folded += found.folded
            audit.undecodable += found.undecodable
            audit.found += found.found
            audit.findings.extend(found.findings)
            if found.events:
                audit.head, audit.position = found.head, found.position
            _add(result, part.days, part.increments)
            if found.cut:
                audit.cut = True
                break
        if waiting:
            events = sum(part.audit.tail_events for part in waiting)
            audit.folded -= events
            audit.find(
                0,
                "",
                f"positions {waiting[0].audit.tail_first} to {waiting[-1].audit.position}"
                f" ({events} events):"
                f" covered by no signature of {source}'s key; not counted (the live figures"
                " hold them back too)",
            )
    return result


def _add(result: Replay, days: dict[DayKey, int], increments: dict[Key, int]) -> None:
    for key, value in days.items():
        result.days[key] += value
    for key, value in increments.items():
        result.increments[key] += value


def _replay_in_process(
    url: str, naming: Naming, known_at: datetime | None, batch: int, detail: bool
) -> tuple[dict[Slice, Part], float, int]:
    """A helper of `Helpers` claiming stretches until none is left: returns its parts by
    stretch, the CPU seconds it took and its process's peak resident KiB."""
    cpu_before, _ = cpu_and_peak()

    async def run() -> dict[Slice, Part]:
        async def failed(error: Exception) -> None:
            pass  # what ends the helper is raised to the parent, which names it

        # A process that cannot read fails the replay at once rather than wait for the bus.
        nc = await nats.connect(
            servers(url),
            name="kapok-audit-stretches",
            allow_reconnect=False,
            max_reconnect_attempts=1,
            connect_timeout=5,
            error_cb=failed,
            **connect_options(Settings(), AUDITOR),  # the credentials the parent got
        )
        tune_gc()
        told = 0

        def show(_: str, done: int) -> None:  # it reads the cut stream alone
            nonlocal told
            read_more(done - told)
            told = done

        try:
            return await _replay_all(nc, naming, iter(claimed, None), known_at, batch, detail, show)
        finally:
            await nc.close()

    parts = asyncio.run(run())
    cpu_after, peak = cpu_and_peak()
    return parts, cpu_after - cpu_before, peak


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
    (sequence, timestamp, subject, bytes) and wakes the loop when a request is over; the next
    request goes out before a batch is checked and folded, so the server streams while Python
    works."""
    js = nc.jetstream()
    stream = naming.stream(piece.source)
    audit = SourceAudit(piece.source, stream)
    result = Replay(detail=detail)
    cutoff_ns = int(known_at.timestamp() * 1e9) if known_at else None
    consumer = await js.add_consumer(stream, replay_consumer(piece.first))
    name = consumer.name
    inbox = nc.new_inbox()
    buffer: list[tuple[int, int, bytes, bytes]] = []  # (sequence, server time, subject, bytes)
    over = asyncio.Event()  # the request in flight is done: its batch, a status, or the end
    last = piece.last
    state = {"in_request": 0, "asked": 0}

    def on_frames(frames: list[Frame]) -> None:
        for subject, reply, data, _ in frames:
            if not reply:  # a status: the request is over
                over.set()
                continue
            seq, stamp = stream_seq_and_time(reply)
            buffer.append((seq, stamp, subject, data))
            state["in_request"] += 1
            # The stretch's last message ends the wait too: a request for more than remain
            # would otherwise only end when it expires.
            if state["in_request"] >= state["asked"] or seq >= last:
                over.set()

    sub = await subscribe_frames(nc, inbox, on_frames)
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"
    expected = piece.first
    reported = time.monotonic()

    async def ask(remaining: int) -> None:
        state["in_request"], state["asked"] = 0, min(batch, remaining)
        over.clear()
        request = orjson.dumps({"batch": state["asked"], "expires": int(5e9)})
        await nc.publish(next_subject, request, reply=inbox)

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
                open_mid_stream(audit, taken[0][3])
            fold = result.fold
            for seq, stamp, subject, data in taken:
                if cutoff_ns is not None and stamp > cutoff_ns:
                    audit.cut = True
                    return _part(audit, result)  # published after known_at, as all after it
                expected = seq + 1
                audit.events += 1
                check_and_fold(audit, fold, seq, subject, data)
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
    settle(audit)
    result.merge()
    aside = Replay(detail=result.detail)
    if audit.tail is not None:
        aside.fold, audit.tail = audit.tail, None  # sent back as sums, as the rest
        aside.merge()
    return Part(
        audit,
        dict(result.days),
        dict(result.increments),
        dict(aside.days),
        dict(aside.increments),
    )


# -- the command ------------------------------------------------------------------------


def print_progress(stream: TextIO = sys.stderr) -> Progress:
    def show(source: str, done: int, total: int) -> None:
        print(f"  {source}: {done:,}/{total:,} events", file=stream, flush=True)

    return show


async def fetch_live(
    url: str, as_of: date | None, known_at: datetime | None = None
) -> dict[str, Any]:
    import httpx

    params = {"as_of": as_of.isoformat()} if as_of else {}
    if known_at is not None:  # the live report as it stood then, corrections after it undone
        params["known_at"] = known_at.isoformat()
    # Signed in as ``KAPOK_TOKEN`` (`kapok audit` sets it from the `kapok up`'s data directory).
    token = os.environ.get("KAPOK_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(base_url=url, timeout=30.0, headers=headers) as http:
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
    """The whole audit; returns the exit status: 0 all proven, 1 findings (on the bus, in the
    figures, or a difference with the live figures), 2 the bus has no Kapok streams or the
    live service could not be asked."""
    from services.reporting.entrypoints.http import today

    try:
        result = await replay(nc, naming, sources, known_at=known_at, progress=print_progress(err))
    except NoKapokStreams as error:
        print(f"kapok audit replay: {error}", file=err)
        return 2
    for audit in result.sources.values():
        print(
            f"{audit.source}: {audit.events:,} events read, {audit.folded:,} folded, "
            f"{audit.undecodable} undecodable, "
            + (f"{audit.found:,} finding(s)" if audit.found else "chain intact"),
            file=err,
        )
        for finding in audit.findings:
            print(f"FINDING {finding}", file=err)
        if audit.found > len(audit.findings):
            print(f"FINDING … and {audit.found - len(audit.findings):,} more on "
                  f"{audit.stream}", file=err)  # fmt: skip
    status = 1 if result.findings else 0
    sums = totals(result.days, as_of)
    unshowable = _unshowable(sums)
    for line in unshowable:
        print(f"FINDING {line}", file=err)
    if unshowable:
        # No report can be made of these sums: the totals are what the audit can show.
        print(
            orjson.dumps({"as_of": str(as_of), "totals": sums}, option=_INDENT).decode(), file=out
        )
        return 1
    body = result.report(as_of, as_of or today())
    print(orjson.dumps(body, option=_INDENT).decode(), file=out)
    if live_url:
        try:
            live = await fetch_live(live_url, as_of, known_at)
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


_INDENT = orjson.OPT_INDENT_2
_COUNTER_MAX = 2**63 - 1  # what a counter holds in the live fold's database (a BIGINT)


def _unshowable(sums: dict[str, int]) -> list[str]:
    """The metrics whose totals no report (or no live counter) can hold: the sum of events
    each within its contract overflows. Named as findings instead of a traceback."""
    found = []
    for metric, value in sorted(sums.items()):
        try:
            if abs(value) > _COUNTER_MAX:
                raise OverflowError("beyond a 64-bit counter, which the live fold keeps")
            if metric.endswith("_fen"):
                yuan(value)
            elif metric.endswith("_milli"):
                units(value)
        except ArithmeticError as error:
            found.append(f"the sum of {metric} is {value:,}: it cannot be reported ({error!r})")
    return found
