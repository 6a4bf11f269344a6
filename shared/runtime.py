"""What every Kapok process does with NATS and its own interpreter: a connection that never
gives up, the streams provisioned, a shutdown that never fails on the bus being away, and a
garbage collector tuned for batches of events. `shared.service.process.serve` composes them
with the store and the relay."""

from __future__ import annotations

import gc
import logging

import nats
from nats.aio.client import Client as NATS

from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.settings import PRODUCERS, Settings

log = logging.getLogger("kapok.runtime")


def tune_gc() -> None:
    """Call once a service has started. Decoding a batch of events allocates thousands of
    objects, which set off full collections of the whole heap every few thousand events:
    about a quarter of the consumer runner's CPU when measured. Freezing the start-up heap
    and raising the first threshold cut that to a few percent. At 500,000 (was 50,000) a
    young collection seldom finds a batch of decoded events still alive, to be walked again
    as they age: the live fold about 6% faster when measured (batches of 2,500). Only
    reference cycles wait for it; everything else is freed as it is dropped."""
    gc.freeze()
    gc.set_threshold(500_000, 20, 20)


async def connect(settings: Settings, name: str) -> NATS:
    """A connection that reconnects forever: while NATS is away, commands still succeed and
    the relay waits; when it is back, everything continues where it stopped."""

    client: list[NATS] = []  # the connection, once made: its callbacks are made first

    async def disconnected() -> None:
        if client and client[0].is_closed:
            return  # closed on purpose (shutdown, the end of an audit): nothing waits
        log.warning("%s: NATS disconnected; events wait in the store", name)

    async def reconnected() -> None:
        log.info("%s: NATS reconnected", name)

    nc = await nats.connect(
        settings.nats_url,
        name=f"kapok-{name}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
    )
    client.append(nc)
    return nc


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
