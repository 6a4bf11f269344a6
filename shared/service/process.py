"""A service process: its store, HTTP API, NATS request-reply handlers, outbox relay and any
background tasks (a consumer runner), in one, started and stopped in a fixed order.

Start-up: the schema and the streams exist before anything is accepted. The relay runs
beside the handlers, so a command succeeds while NATS is down (its events wait in the store)
and reaches the stream when NATS is back; the connection (`shared.runtime.connect`) never
gives up reconnecting. Ctrl-C or SIGTERM: HTTP stops taking requests and finishes those in
flight, then the NATS handlers, the background tasks, the relay and the database stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any

import nats
import uvicorn
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from shared import logs, signing
from shared.auth.gate import Gate
from shared.auth.start import caught_up, start_gate
from shared.bus.naming import Naming
from shared.collector import tune_gc
from shared.consumer import CheckpointMoved, ConsumerRunner
from shared.contracts import places
from shared.eventstore import Database, EventStore
from shared.lease import Lease, hold, lease_for
from shared.relay import OutboxRelay
from shared.runtime import Link, connect, connect_options, disconnect, provision
from shared.service import health
from shared.service.application import Service
from shared.service.commands import Command
from shared.service.nats import build_broker, start
from shared.settings import Settings

log = logging.getLogger("kapok.service")

Background = Callable[[NATS], Coroutine[Any, Any, None]]
"""A task the process runs beside its handlers (given the process's NATS connection)."""

Consumer = Callable[[NATS], ConsumerRunner]
"""A consumer runner the process runs beside its handlers, made on the process's NATS
connection: its stats are in the process's health."""


class HttpServer(uvicorn.Server):
    """uvicorn, minus its signal handling: uvicorn re-raises a caught Ctrl-C once it has
    stopped, which would cancel this process's clean-up half-way. `serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


ACCESS_LOG = "KAPOK_ACCESS_LOG"


def access_log() -> bool:
    """uvicorn's access log (`Settings.access_log`, ``KAPOK_ACCESS_LOG=1``): off by default.
    Errors are logged either way."""
    return Settings().access_log


def http_config(app: Any, host: str, port: int) -> uvicorn.Config:
    """How every service serves HTTP (and bench/hotline.py's bare endpoint, for a fair
    ratio)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        access_log=access_log(),
        lifespan="off",
        log_config=logs.uvicorn_config(),  # KAPOK_LOG_FORMAT=json: the root's JSON lines
    )


def event_store(settings: Settings, source: str) -> EventStore:
    """A producing service's store: its database, and its signing keys (made if it has none)."""
    return EventStore(
        Database(settings.database_url_for(source)),
        source,
        signer=signing.signer(settings.signing_path, source),
    )


async def consume(runner: ConsumerRunner, lease: Lease | None) -> None:
    """Run ``runner`` while this instance holds ``lease`` (stand by while another does); a
    checkpoint found moved by another writer lets the lease go and waits to take it again."""
    if lease is None:
        await runner.run()
        return

    async def stop_consuming(task: asyncio.Task[None]) -> None:
        runner.stop()  # after the batch in hand, not inside a commit
        await asyncio.wait({task}, timeout=10)
        await _stop(task)

    try:
        while True:
            try:
                await hold(lease, runner.take_over, stop_consuming)
                return  # stopped: the process is stopping
            except CheckpointMoved:
                await asyncio.sleep(1.0)  # said in the log and in health
    finally:
        await lease.release()


def _ended(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        # A relay stops only on StreamDiverged, a runner on a bug: commands still land in
        # the store, but say it as loudly as we can; /api/health says it too (not ready).
        log.critical("%s stopped: %s", task.get_name(), task.exception())


async def _stop(task: asyncio.Task[None]) -> None:
    # Cancel until it has ended: on Python 3.11 `asyncio.wait_for` can swallow a cancellation
    # that lands as its inner wait ends (CPython gh-86296), and the relay and the runner wait
    # that way, so one cancel() may leave a task running and a shutdown hanging.
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()


async def serve(
    settings: Settings,
    service: Service,
    make_app: Callable[[Gate], FastAPI],
    commands: Mapping[str, type[Command]],
    host: str,
    port: int,
    background: Sequence[Background] = (),
    consumers: Sequence[Consumer] = (),
) -> None:
    name = service.name
    naming = Naming.of(settings)
    if settings.places_file is not None:
        added = places.extend_from(settings.places_file)
        log.info(
            "%s: %d stations added to the catalogue from %s", name, added, settings.places_file
        )
    await service.setup()
    link = Link(name)
    nc = await connect(settings, name, link)
    tasks: list[asyncio.Task[None]] = []
    runners: list[ConsumerRunner] = []
    consuming: list[asyncio.Task[None]] = []  # the runners' tasks
    consumer_leases: dict[str, Lease] = {}
    options = connect_options(settings, name)
    gate, following = await start_gate(settings, nc, name)
    app = make_app(gate)
    broker = build_broker(settings.nats_url, service, gate, naming, commands, options)
    try:
        for what, follow in following:
            tasks.append(asyncio.create_task(follow, name=f"{name}-{what}"))
        # Every producer's stream: a consumer of another service's events needs its stream.
        await provision(nc, settings)
        # One relay per source publishes among the instances on one database (shared/lease.py).
        lease = lease_for(service.db.url, f"relay {service.store.source}", settings.instance)
        relay = OutboxRelay(service.store, nc, naming, lease=lease)
        tasks.append(asyncio.create_task(relay.run(), name=f"{name}-relay"))
        for make in consumers:
            runners.append(runner := make(nc))
            # One instance consumes at a time, as one relays: two runners on one database
            # would race for its checkpoint (the second write fails: CheckpointMoved).
            consumer_lease = lease_for(service.db.url, f"consumer {runner.name}", settings.instance)
            # Named as the durable (aid-referrals, …): what health and the logs call it.
            consuming.append(asyncio.create_task(consume(runner, consumer_lease), name=runner.name))
            if consumer_lease is not None:  # in health and /metrics, beside the relay's
                consumer_leases[runner.name] = consumer_lease
        tasks += consuming
        for index, run in enumerate(background):
            tasks.append(asyncio.create_task(run(nc), name=f"{name}-background-{index}"))
        for task in tasks:
            task.add_done_callback(_ended)
        health.register(
            app,
            gate=gate,
            health=health.Health(
                name,
                service.db,
                link,
                relay,
                runners,
                tasks,
                instance=settings.instance,
                leases=consumer_leases,
            ),
        )
        await caught_up(gate)
        await start(broker)
        tune_gc()
        config = http_config(app, host, port)
        server = HttpServer(config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
        log.info("%s: HTTP on %s:%d, NATS at %s", name, host, port, settings.nats_url)
        await server.serve()
    finally:
        # The broker's own drain fails when NATS left first; its subscriptions end anyway.
        with contextlib.suppress(nats.errors.Error, OSError):
            await broker.stop()
        for runner in runners:
            runner.stop()  # after the batch in hand: a cancel mid-commit can lock SQLite
        if consuming:
            await asyncio.wait(consuming, timeout=5.0)
        for task in reversed(tasks):
            await _stop(task)
        await disconnect(nc)
        await service.db.dispose()
