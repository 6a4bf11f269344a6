"""A consumer's batches decoded and prepared in a worker process, beside the runner's.

Why: a consumer runner is CPU-bound in one interpreter. Per event, decoding costs about as
much as receiving it and acknowledging it, and a fold half as much again, while the machine
has other cores. For the sources whose events can be prepared in any grouping (no state
carried from one batch to the next), the runner hands a catching-up batch's bytes to a worker
process, which decodes them (with the same checks as the runner) and runs the consumer's
``prepare`` on them; the runner meanwhile receives the next batch and commits the previous.
What ``prepare`` returns is written by ``write`` in the runner's transaction, with the
checkpoint, exactly where the handler would have written the events.

Nothing here decides anything: whenever the worker cannot prepare a batch (an event does not
decode or is out of place, ``prepare`` raises, the worker died), the runner applies that batch
itself, event by event, as if there were no worker, dead letters and all.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from shared.collector import tune_gc
from shared.contracts.envelope import Envelope
from shared.contracts.registry import REGISTRY, UndecodableEvent

if TYPE_CHECKING:  # the worker imports this module: no database code in it
    from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger("kapok.offload")

SPAWN = multiprocessing.get_context("spawn")
"""Where worker processes and what they share (a `SPAWN.Value`) come from."""


def worker_processes(
    count: int, initializer: Callable[..., None] | None = None, initargs: tuple[Any, ...] = ()
) -> ProcessPoolExecutor:
    """Kapok's one way to start worker processes (this module's `Worker`, the audit replay's
    helpers): ``count`` fresh interpreters (spawn: no copy of this process's event loop,
    sockets or threads) that end when this process does, however it ends. Each runs
    ``initializer(*initargs)`` first: what must reach a worker by inheritance (a
    `SPAWN.Value`) goes there, not with the work submitted."""
    return ProcessPoolExecutor(
        count, mp_context=SPAWN, initializer=_started, initargs=(os.getpid(), initializer, initargs)
    )


@dataclass(frozen=True)
class Offload:
    """How a consumer's batches may be prepared in a worker process.

    ``prepare(events)`` runs in the worker: a module-level function (it travels by name), pure.
    ``write(conn, prepared)`` applies its result in the runner's transaction; the two together
    must do what the consumer's handler does with the same events. ``sources``: the sources
    whose batches may go to the worker, those whose handler carries no state between events.
    Batches smaller than ``min_batch`` (a quiet stream's few events) are applied in the runner:
    sending them would cost more than folding them."""

    prepare: Callable[[list[Envelope[Any]]], Any]
    write: Callable[[AsyncConnection, Any], Awaitable[None]]
    sources: frozenset[str]
    min_batch: int = 200


class Worker:
    """One worker process, started when first asked for and ready about half a second of imports
    later; until then (and after it died, until it is started again) it takes nothing, and
    the runner does the work itself."""

    def __init__(self, prepare: Callable[[list[Envelope[Any]]], Any]) -> None:
        self._prepare = prepare
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[None] | None = None
        self._unusable = False

    async def ready(self) -> None:
        """Start the worker now, and return once it takes work."""
        self._start()
        assert self._ready is not None
        await asyncio.wrap_future(self._ready)

    def _start(self) -> None:
        if self._pool is None:
            self._pool = worker_processes(1)
            # Imports the prepare function's module and builds the decoder in the worker.
            self._ready = self._pool.submit(_warm, self._prepare)

    def submit(
        self, source: str, seqs: list[int], payloads: list[bytes]
    ) -> asyncio.Future[Any] | None:
        """What ``prepare`` makes of these deliveries (None in it: the worker could not),
        or None now if the worker is not ready."""
        if self._unusable:
            return None
        self._start()
        assert self._pool is not None and self._ready is not None
        if not self._ready.done():
            return None
        try:
            self._ready.result()
        except Exception:
            # It never started (its prepare function's module fails to import there, say):
            # the runner does the work itself from now on, as on a machine with one core.
            log.exception("offload: the worker cannot start; batches are applied in process")
            self.close()
            self._unusable = True
            return None
        try:
            work = self._pool.submit(_decode_and_prepare, self._prepare, source, seqs, payloads)
        except BrokenProcessPool as error:
            log.warning("offload: the worker process is gone (%s); a new one is started", error)
            self.close()
            return None
        return asyncio.wrap_future(work)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._ready = None


# -- in the worker ------------------------------------------------------------------------


def _started(
    parent: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    _exit_with(parent)
    if initializer is not None:
        initializer(*initargs)


def _exit_with(parent: int) -> None:
    """A worker ends when the process that started it does, however it ended (killed
    included): otherwise it would wait on its queue for ever."""
    process = multiprocessing.parent_process()
    if process is None or process.pid != parent:
        return
    sentinel = process.sentinel  # readable once the parent has ended

    def watch() -> None:
        wait([sentinel])
        os._exit(0)

    threading.Thread(target=watch, name="kapok-offload-parent", daemon=True).start()


def _warm(_prepare: Callable[[list[Envelope[Any]]], Any]) -> None:
    """Run first: receiving ``_prepare`` imports its module; then the decoder is built, and
    the collector tuned as in every Kapok process (without it, decoding and folding a batch
    here took twice as long: 25 µs an event against 12.6, measured)."""
    REGISTRY.adapter  # noqa: B018 (built here once rather than in the first batch)
    tune_gc()


def _decode_and_prepare(
    prepare: Callable[[list[Envelope[Any]]], Any],
    source: str,
    seqs: Sequence[int],
    payloads: Sequence[bytes],
) -> Any:
    """(the first event's prev_hash, the last one's hash, what ``prepare`` made of them), or
    None when the runner must apply the batch itself: an event does not decode, is out of
    place or altered, or does not link to the one before it (the runner dead-letters it, and
    checks the batch's first link against its checkpoint)."""
    events: list[Envelope[Any]] = []
    for seq, payload in zip(seqs, payloads, strict=True):
        try:
            event = REGISTRY.decode_at(payload, source, seq)
        except UndecodableEvent:
            return None
        if events and event.prev_hash != events[-1].hash:
            return None
        events.append(event)
    return events[0].prev_hash, events[-1].hash, prepare(events)
