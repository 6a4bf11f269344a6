"""What every Kapok process does with NATS: a connection that never gives up, the streams
provisioned, a shutdown that never fails on the bus being away. `shared.service.process.serve`
composes them with the store, the relay and the collector's tuning (`shared.collector`)."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client as NATS

from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.settings import PRODUCERS, Settings

log = logging.getLogger("kapok.runtime")


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
