"""Audit replay: the figures recomputed from the bus alone, with every hash link checked.

Reads each source's stream from its first message on an ephemeral consumer (no acks: an
auditor changes nothing on the server), batched pull requests on one inbox (the raw loop the
foundation's benchmark measures, not nats-py's per-message ``fetch``). Each message is
re-hashed against its predecessor (`verify_link`) and its position checked against its stream
sequence, so an altered, dropped or inserted event is named by source and position. The events
are folded in memory by the same `Fold` the live consumer uses, and the report is compared
figure by figure with the live service's `/api/report` for the same as-of day.

``known_at`` cuts each stream at the last message the server had stored by then (its own
timestamp), so a report can be reproduced as it could have been known at that moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TextIO

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from services.reporting.domain.fold import Fold, totals
from services.reporting.domain.report import differences, report
from shared.bus.naming import Naming
from shared.contracts import GENESIS, REGISTRY, BrokenChain, UndecodableEvent, verify_link

Progress = Callable[[str, int, int], None]


@dataclass
class SourceAudit:
    source: str
    events: int = 0  # read from the stream (within known_at)
    folded: int = 0
    undecodable: int = 0  # the live consumer dead-letters these: not counted either side
    broken: str | None = None  # the first broken link, if any
    head: str = GENESIS  # the last verified hash


@dataclass
class Replay:
    fold: Fold = field(default_factory=Fold)
    sources: dict[str, SourceAudit] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def broken(self) -> list[str]:
        return [s.broken for s in self.sources.values() if s.broken]

    def report(self, as_of: date | None, label: date) -> dict[str, object]:
        return report(label, totals(self.fold.increments, as_of))


async def replay(
    nc: NATS,
    naming: Naming,
    sources: Sequence[str],
    *,
    known_at: datetime | None = None,
    progress: Progress | None = None,
    batch: int = 2000,
) -> Replay:
    result = Replay()
    started = time.perf_counter()
    for source in sources:
        audit = SourceAudit(source)
        result.sources[source] = audit
        await _replay_source(nc, naming, audit, result.fold, known_at, progress, batch)
    result.seconds = time.perf_counter() - started
    return result


async def _replay_source(
    nc: NATS,
    naming: Naming,
    audit: SourceAudit,
    fold: Fold,
    known_at: datetime | None,
    progress: Progress | None,
    batch: int,
) -> None:
    js = nc.jetstream()
    stream = naming.stream(audit.source)
    last = int((await js.stream_info(stream)).state.last_seq)
    if last == 0:
        return
    cutoff_ns = int(known_at.timestamp() * 1e9) if known_at else None
    consumer = await js.add_consumer(
        stream,
        api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    name = consumer.name
    inbox = nc.new_inbox()
    queue: asyncio.Queue[Msg] = asyncio.Queue()

    async def on_message(msg: Msg) -> None:
        queue.put_nowait(msg)

    sub = await nc.subscribe(inbox, cb=on_message)
    request = orjson.dumps({"batch": batch, "expires": int(5e9)})
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{name}"
    expected = 1
    reported = time.monotonic()
    try:
        while expected <= last:
            await nc.publish(subject, request, reply=inbox)
            got = 0
            while got < batch and expected <= last:
                msg = await asyncio.wait_for(queue.get(), 10.0)
                if not msg.reply:  # a status: this request is over, ask again
                    break
                got += 1
                seq, stamp = _seq_and_time(msg.reply)
                if cutoff_ns is not None and stamp > cutoff_ns:
                    return  # published after known_at, and so is all that follows
                expected = seq + 1
                audit.events += 1
                if audit.broken is None:
                    _check_and_fold(audit, fold, seq, msg.data)
                if progress and time.monotonic() - reported > 1.0:
                    reported = time.monotonic()
                    progress(audit.source, seq, last)
    finally:
        await sub.unsubscribe()
        # Should this fail, the consumer expires on its own after inactive_threshold.
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, name)
        if progress:
            progress(audit.source, min(expected - 1, last), last)


def _check_and_fold(audit: SourceAudit, fold: Fold, seq: int, data: bytes) -> None:
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
    try:
        envelope = REGISTRY.decode(data)
    except UndecodableEvent:
        audit.undecodable += 1
        return
    fold.apply(envelope)
    audit.folded += 1


def _seq_and_time(reply: str) -> tuple[int, int]:
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, or 12 tokens with
    # domain and account hash in front.
    tokens = reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7])
    return int(tokens[7]), int(tokens[9])


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
