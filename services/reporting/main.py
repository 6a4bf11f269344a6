"""The reporting process: the consumer runner folding HOTLINE, AID and DONATION into counters,
and the HTTP API reading them.

`kapok serve reporting` runs `serve`. The runner commits each batch's counters with its
checkpoint, so stopping this process at any moment and starting it again never counts an
event twice or misses one.

Two instances on one database (README, "Two instances of a service"): the one holding the
"reporting fold" lease (`shared.lease`: a PostgreSQL advisory lock, or a flock beside a
SQLite file) folds and publishes the KV totals; the other serves the same counters from the
database and takes the fold over within about a second of the holder's end. Should two ever
fold at once, the second checkpoint write fails (`CheckpointMoved`) instead of overwriting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js.kv import KeyValue

from services.reporting.adapters.counters import CounterStore, apply_batch, write_folded
from services.reporting.adapters.kv import open_bucket, publish_totals
from services.reporting.adapters.tables import CONSUMER
from services.reporting.domain.fold import ORDERED_SOURCES, fold_stateless
from services.reporting.entrypoints.http import Reporting, build_app
from services.reporting.slices import processes_wanted
from shared import signing
from shared.auth.start import caught_up, start_gate
from shared.bus.naming import Naming
from shared.collector import tune_gc
from shared.consumer import CheckpointMoved, ConsumerRunner
from shared.eventstore.database import Database
from shared.lease import Lease, hold, lease_for
from shared.offload import Offload
from shared.runtime import Link, connect, disconnect, provision
from shared.service.health import Health
from shared.service.process import HttpServer, http_config
from shared.settings import PRODUCERS, Settings

SERVICE = "reporting"
DEFAULT_PORT = 8000
log = logging.getLogger("kapok.reporting")


@dataclass
class Running:
    """A started reporting service: its parts, for `serve` and for tests."""

    db: Database
    nc: NATS
    runner: ConsumerRunner
    reporting: Reporting
    task: asyncio.Task[None]


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    database_url: str | None = None,
    *,
    batch: int = 2500,
    totals_bucket: bool = True,
    offload_from: int | None = 200,
) -> AsyncIterator[Running]:
    """Start the consumer (and the KV bucket's publisher) in the background; stop them and
    close everything on exit.

    ``batch``: the most events one transaction applies while catching up (a quiet stream's
    batches are what arrives within milliseconds). A batch costs about 4 ms of CPU whatever its
    size (its statements' trips to SQLite's thread, the checkpoint, the commit): 2,500 spreads
    that to under 2 µs an event (the live fold 13% faster than at 1,000 when measured; 5,000
    was slower again and held 310 MB), for about 65 MB more memory than 1,000.

    ``offload_from``: batches of the stateless sources from this many events are decoded and
    folded in a worker process (`_offload`); None: all in this process."""
    # Not durable on SQLite (synchronous=NORMAL): the counters commit with their checkpoint,
    # so a power loss can only take the last batches back, whole, and the runner then folds
    # them again from the bus (its durable is re-created from the checkpoint when the server
    # had it further on). One fsync a batch less.
    db = Database(database_url or settings.database_url_for(SERVICE), durable=False)
    store = CounterStore(db)
    await store.setup()
    link = Link(SERVICE)
    nc = await connect(settings, SERVICE, link)
    task: asyncio.Task[None] | None = None
    kv_task: asyncio.Task[None] | None = None
    stopping = asyncio.Event()
    lease: Lease | None = None
    try:
        # The streams must exist before a durable can be made on them; provisioning is
        # idempotent, so whichever process starts first creates them.
        await provision(nc, settings)
        runner = ConsumerRunner(
            nc=nc,
            db=db,
            naming=Naming.of(settings),
            name=CONSUMER,  # the one whose checkpoints a rebuild of the counters resets
            sources=list(PRODUCERS),
            handler=apply_batch,
            batch=batch,
            offload=_offload(offload_from),
            # Only what each source signed is counted (none made here yet: not checked).
            ring=signing.ring(settings.signing_path),
        )
        lease = lease_for(db.url, "reporting fold", settings.instance)
        kv = await open_bucket(nc, Naming.of(settings), settings.stream_replicas)
        if lease is None or await lease.try_acquire():
            await runner.setup()  # at once, as a single instance always did
        else:
            await runner.observe()
        if lease is None:
            task = asyncio.create_task(runner.run(), name="reporting-consumer")
            kv_task = asyncio.create_task(
                publish_totals(kv, store, db, stopping), name="reporting-kv"
            )
            tasks = [task, kv_task]
        else:
            fold = _fold(lease, runner, kv, store, db)
            task = asyncio.create_task(fold, name="reporting-consumer")
            tasks = [task]
        task.add_done_callback(_consumer_ended)
        reporting = Reporting(store, runner)
        # Not ready without NATS: the figures would go stale with nothing to show it.
        reporting.health = Health(
            SERVICE,
            db,
            link,
            runners=[runner],
            tasks=tasks,
            ready_lag=reporting.ready_lag,
            needs_nats=True,
            instance=settings.instance,
            leases={"fold": lease} if lease is not None else {},
        )
        yield Running(db, nc, runner, reporting, task)
    finally:
        stopping.set()
        await _stop(kv_task)
        if task is not None:
            # Stopped, not cancelled: a cancel inside a commit can leave SQLite locked.
            runner.stop()
            if runner.active:  # else standing by: nothing to finish
                await asyncio.wait({task}, timeout=10)
            await _stop(task)
        if lease is not None:
            await lease.release()  # a stand-by's connection, or a lease taken before a failure
        await disconnect(nc)
        await db.dispose()


async def _fold(
    lease: Lease, runner: ConsumerRunner, kv: KeyValue, store: CounterStore, db: Database
) -> None:
    """Fold (and publish the KV totals) while this instance holds ``lease``; stand by while
    another does. A checkpoint found moved by another writer (`CheckpointMoved`, shown in
    health) lets the lease go; the fold starts again from the database's checkpoints."""

    async def folding() -> None:
        stopping = asyncio.Event()
        kv_task = asyncio.create_task(publish_totals(kv, store, db, stopping), name="reporting-kv")
        try:
            await runner.take_over()
        finally:
            stopping.set()
            await _stop(kv_task)

    async def stop_folding(task: asyncio.Task[None]) -> None:
        # Stopped after the batch in hand, not cancelled inside a commit (SQLite).
        runner.stop()
        await asyncio.wait({task}, timeout=10)
        await _stop(task)

    while True:
        try:
            await hold(lease, folding, stop_folding)
            return  # stopped (`runner.stop`): the process is stopping
        except CheckpointMoved:
            await asyncio.sleep(1.0)  # said in the log and in health (`SourceStats.moved`)


def _offload(min_batch: int | None) -> Offload | None:
    """The stateless sources' batches of at least ``min_batch`` events (catching up) decoded
    and folded in a worker process (`shared/offload.py`), where there is a core for it: in one
    process, the fold ran at about half the raw pull's rate, two thirds of its time decoding
    and folding; with the worker, at 0.75-0.82 of it (README)."""
    if min_batch is None or processes_wanted(None) < 2:
        return None
    return Offload(
        prepare=fold_stateless,
        write=write_folded,
        sources=frozenset(PRODUCERS) - ORDERED_SOURCES,
        min_batch=min_batch,
    )


async def _stop(task: asyncio.Task[None] | None) -> None:
    """Cancel until done: on Python 3.11 a cancel landing while asyncio.wait_for completes
    is swallowed (the runner's pull loop and `Database.wait_for_change` use it)."""
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.5)
    if task is not None and not task.cancelled() and task.exception() is not None:
        log.warning("reporting: %s ended with %r", task.get_name(), task.exception())


def _consumer_ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("reporting consumer stopped: %r", task.exception())


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    async with running(settings) as parts:
        gate, following = await start_gate(settings, parts.nc, SERVICE)
        # Kept current beside the server; their end is the server's (cancelled on exit).
        signin = [asyncio.create_task(f, name=f"reporting-{what}") for what, f in following]
        try:
            await caught_up(gate)
            tune_gc()  # as every Kapok service does once started (shared/collector.py)
            server = HttpServer(http_config(build_app(parts.reporting, gate), host, port))
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
            log.info("reporting: HTTP on %s:%d, NATS at %s", host, port, settings.nats_url)
            await server.serve()
        finally:
            for task in signin:
                await _stop(task)
