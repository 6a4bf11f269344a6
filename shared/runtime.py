"""What every producing service starts with: its database and store, a NATS connection that
never gives up, its streams provisioned, and its outbox relay running in the background."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NATS

from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.settings import PRODUCERS, Settings

log = logging.getLogger("kapok.runtime")


def tune_gc() -> None:
    """Call once a service has started. Decoding a batch of events allocates thousands of
    objects, which set off full collections of the whole heap every few thousand events:
    about a quarter of the consumer runner's CPU when measured. Freezing the start-up heap
    and raising the first threshold cut that to a few percent."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


async def connect(settings: Settings, name: str) -> NATS:
    """A connection that reconnects forever: while NATS is away, commands still succeed and
    the relay waits; when it is back, everything continues where it stopped."""

    async def disconnected() -> None:
        log.warning("%s: NATS disconnected; events wait in the store", name)

    async def reconnected() -> None:
        log.info("%s: NATS reconnected", name)

    return await nats.connect(
        settings.nats_url,
        name=f"kapok-{name}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
    )


async def disconnect(nc: NATS) -> None:
    """Drain what is in flight, or just close when NATS is already gone (a terminal's Ctrl-C
    reaches nats-server too): shutting down must never fail on the bus being away."""
    if nc.is_connected:
        try:
            await nc.drain()
            return
        except (nats.errors.Error, OSError) as error:
            log.info("drain on shutdown failed (%s); closing", error)
    await nc.close()


async def provision(nc: NATS, settings: Settings) -> None:
    naming = Naming.of(settings)
    specs = event_stream_specs(
        naming, PRODUCERS, settings.stream_replicas, settings.duplicate_window_s
    )
    await ensure_streams(nc, specs)


@dataclass
class Producer:
    """A running producer's foundation. ``async with Producer.start(...)`` in a service."""

    settings: Settings
    source: str
    db: Database
    store: EventStore
    nc: NATS
    relay: OutboxRelay
    _relay_task: asyncio.Task[None] | None = field(default=None, repr=False)

    @classmethod
    async def start(cls, settings: Settings, source: str) -> Producer:
        db = Database(settings.database_url_for(source))
        store = EventStore(db, source)
        await store.setup()
        nc = await connect(settings, source)
        await provision(nc, settings)
        relay = OutboxRelay(store, nc, Naming.of(settings))
        producer = cls(settings, source, db, store, nc, relay)
        producer._relay_task = asyncio.create_task(relay.run(), name=f"{source}-relay")
        producer._relay_task.add_done_callback(producer._relay_ended)
        return producer

    def _relay_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # Only StreamDiverged ends the relay: commands still land in the store, but
            # nothing reaches the bus until someone looks. Say it as loudly as we can.
            log.critical("%s relay stopped: %s", self.source, task.exception())

    @property
    def relay_running(self) -> bool:
        return self._relay_task is not None and not self._relay_task.done()

    async def stop(self) -> None:
        if self._relay_task is not None:
            self._relay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._relay_task
        await disconnect(self.nc)
        await self.db.dispose()

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
