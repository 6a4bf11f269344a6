"""What every Kapok process does with NATS: a connection that never gives up, the streams
provisioned, a shutdown that never fails on the bus being away. `shared.service.process.serve`
composes them with the store, the relay and the collector's tuning (`shared.collector`)."""

from __future__ import annotations

import contextlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import nats
from nats.aio.client import Client as NATS

from shared.bus import auth
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.bus.servers import servers
from shared.compat import natspy
from shared.settings import PRODUCERS, Settings

log = logging.getLogger("kapok.runtime")


@dataclass
class Link:
    """A connection's state as nats-py's callbacks tell it, for health and for the log.

    nats-py calls ``error_cb`` at every failed reconnect attempt (twice a second here) and its
    default logs each with a traceback: thousands of lines for a minute's outage. An outage
    is logged twice instead: when it begins, and when it ends, with its duration and the
    attempts' last error."""

    name: str
    nc: NATS | None = None
    down_since: float | None = None  # wall-clock time the outage began; None: connected
    outages: int = 0
    failed_attempts: int = 0  # in the current (or last) outage
    last_error: str | None = None
    _began: float = field(default=0.0, repr=False)  # monotonic, for the duration

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    def callbacks(self) -> dict[str, Any]:
        return {
            "error_cb": self._error,
            "disconnected_cb": self._disconnected,
            "reconnected_cb": self._reconnected,
        }

    def _begin(self) -> None:
        if self.down_since is None:
            self.down_since, self._began = time.time(), time.monotonic()
            self.outages += 1
            self.failed_attempts = 0
            log.warning(
                "%s: NATS connection lost; reconnecting (events wait in the store, logged "
                "again when back)",
                self.name,
            )

    async def _disconnected(self) -> None:
        if self.nc is not None and self.nc.is_closed:
            return  # closed on purpose (shutdown, the end of an audit): nothing waits
        self._begin()

    async def _error(self, error: Exception) -> None:
        if self.nc is not None and (self.nc.is_closed or self.nc.is_draining):
            return  # closing on purpose: whatever the socket says now is no outage
        self.last_error = repr(error)
        # The read loop's end of the connection (EOF, a stale one) comes before nats-py says
        # it is disconnected: it is the outage's first sign.
        if isinstance(error, _LOST) or self.down_since is not None or not self.connected:
            self._begin()
            self.failed_attempts += 1
            return
        log.warning("%s: NATS error: %r", self.name, error)

    async def _reconnected(self) -> None:
        if self.down_since is None:
            return
        took = time.monotonic() - self._began
        log.warning(
            "%s: NATS reconnected after %.1fs (%d failed attempts, the last: %s)",
            self.name,
            took,
            self.failed_attempts,
            self.last_error,
        )
        self.down_since = None


_LOST = (OSError, nats.errors.UnexpectedEOF, nats.errors.StaleConnectionError)


async def connect(settings: Settings, name: str, link: Link | None = None) -> NATS:
    """A connection that reconnects forever: while NATS is away, commands still succeed and
    the relay waits; when it is back, everything continues where it stopped. ``link``: where
    its state is kept (`Link`); one of its own otherwise."""
    link = link if link is not None else Link(name)
    nc = await nats.connect(
        servers(settings.nats_url),  # one URL, or a cluster's nodes comma-separated
        name=f"kapok-{name}",
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        **link.callbacks(),
        **connect_options(settings, name),
    )
    link.nc = nc
    await natspy.check(nc)  # at start: a fast path nats-py no longer allows is said now
    return nc


def connect_options(settings: Settings, identity: str) -> dict[str, Any]:
    """nats-py's (and FastStream's) options for signing in as ``identity``: its credentials
    from the settings, if any, TLS if configured, and inboxes under the identity's own prefix,
    the only ones its permissions let it subscribe to (`shared.bus.auth.inbox_prefix`)."""
    options: dict[str, Any] = {"inbox_prefix": auth.inbox_prefix(identity)}
    if settings.nats_creds is not None:
        options["user_credentials"] = str(settings.nats_creds)
    elif settings.nats_nkey_seed is not None:
        options["nkeys_seed"] = str(settings.nats_nkey_seed)
    if settings.nats_tls_ca or settings.nats_tls_cert:
        context = ssl.create_default_context(
            cafile=str(settings.nats_tls_ca) if settings.nats_tls_ca else None
        )
        if settings.nats_tls_cert is not None:
            key = settings.nats_tls_key
            context.load_cert_chain(str(settings.nats_tls_cert), str(key) if key else None)
        options["tls"] = context
    return options


async def disconnect(nc: NATS) -> None:
    """Drain what is in flight, or just close when NATS is already gone (a terminal's Ctrl-C
    reaches nats-server too): shutting down must never fail on the bus being away."""
    if nc.is_connected:
        try:
            await nc.drain()
            return
        except (nats.errors.Error, OSError) as error:
            log.info("drain on shutdown failed (%s); closing", error)
    # nats-py's close flushes what it buffered for a server that may be gone: "Connection
    # lost" then, while NATS is away, would end the shutdown before the database closes.
    with contextlib.suppress(nats.errors.Error, OSError):
        await nc.close()


async def provision(nc: NATS, settings: Settings, *, admin: bool | None = None) -> None:
    """Kapok's streams made or brought up to date, or only checked: a process that signs in
    with an identity of its own only checks them (only the administrator's identity may
    create, update or delete streams: `kapok up` provisions with it before starting the
    services); one without an identity, on a server that lets anyone in, provisions as the
    administrator would. ``admin``: decided by the caller instead."""
    naming = Naming.of(settings)
    specs = event_stream_specs(
        naming, PRODUCERS, settings.stream_replicas, settings.duplicate_window_s
    )
    may_change = settings.nats_identity is None if admin is None else admin
    await ensure_streams(nc, specs, change=may_change)
