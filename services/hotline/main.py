"""The hotline process: HTTP API, NATS request-reply handlers and the outbox relay, in one.

`kapok serve hotline` runs `serve`. Start-up order matters: the schema and the streams exist
before anything is accepted; the relay runs beside the handlers, so a command succeeds even
while NATS is down (its events wait in the store) and reaches the stream when NATS is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import nats
import uvicorn

from services.hotline.application.service import HotlineService
from services.hotline.entrypoints.http import build_app
from services.hotline.entrypoints.nats import build_broker, start
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.settings import Settings

SERVICE = "hotline"
DEFAULT_PORT = 8001
log = logging.getLogger("kapok.hotline")


class _HttpServer(uvicorn.Server):
    """uvicorn, minus its signal handling: uvicorn re-raises a caught Ctrl-C once it has
    stopped, which would cancel this process's clean-up half-way. `serve` owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    naming = Naming.of(settings)
    db = Database(settings.database_url_for(SERVICE))
    service = HotlineService(EventStore(db, SERVICE))
    await service.setup()
    # Reconnect forever (nats-py gives up after 60 tries by default): while NATS is away,
    # commands keep succeeding and their events wait in the store for the relay.
    nc = await nats.connect(
        settings.nats_url, name="kapok-hotline-relay", max_reconnect_attempts=-1
    )
    relay_task: asyncio.Task[None] | None = None
    broker = build_broker(settings.nats_url, service, naming)
    failure: BaseException | None = None
    try:
        specs = event_stream_specs(
            naming, [SERVICE], settings.stream_replicas, settings.duplicate_window_s
        )
        await ensure_streams(nc, specs)
        relay_task = asyncio.create_task(OutboxRelay(service.store, nc, naming).run())
        await start(broker)
        config = uvicorn.Config(
            build_app(service), host=host, port=port, log_level="info", lifespan="off"
        )
        server = _HttpServer(config)

        def relay_ended(task: asyncio.Task[None]) -> None:
            # The relay only ends on a stream that holds another store's history: serving
            # on would store events that can never be published. Stop, and say why.
            if not task.cancelled() and task.exception() is not None:
                log.error("hotline: the outbox relay stopped: %s", task.exception())
                server.should_exit = True

        relay_task.add_done_callback(relay_ended)
        # Ctrl-C or SIGTERM: HTTP stops taking requests and finishes those in flight, then
        # the NATS handlers, the relay and the database stop in that order below.
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: setattr(server, "should_exit", True))
        log.info("hotline: HTTP on %s:%d, NATS at %s", host, port, settings.nats_url)
        await server.serve()
    finally:
        await broker.stop()
        if relay_task is not None:
            relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await relay_task
                except Exception as error:
                    failure = error
        await nc.drain()
        await db.dispose()
    if failure is not None:
        raise failure
