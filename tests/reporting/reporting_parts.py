"""The running parts of the reporting stories: three producers' stores and relays on the
session's nats-server, and the reporting service reading them over HTTP (httpx over ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import nats
from harness import signin
from harness.waits import until
from nats.aio.client import Client as NATS

from services.reporting.entrypoints.http import build_app
from services.reporting.main import Running, running
from shared.bus.naming import Naming
from shared.contracts import Context, NewEvent
from shared.eventstore import Append, Database, EventStore
from shared.relay import OutboxRelay
from shared.runtime import provision
from shared.settings import PRODUCERS, Settings


@dataclass
class Producers:
    """hotline, aid and donation as far as reporting can tell: stores whose events a relay
    publishes to their streams."""

    nc: NATS
    stores: dict[str, EventStore]
    relays: dict[str, OutboxRelay]
    made: int = field(default=0)

    async def record(self, source: str, news: Sequence[NewEvent]) -> None:
        """Each event its own aggregate, appended and published."""
        appends = []
        for new in news:
            self.made += 1
            appends.append(Append(f"{source}-{self.made}", 0, [new]))
        if appends:
            await self.stores[source].append_all(appends, Context())
        await self.relays[source].publish_pending()

    async def heads(self) -> dict[str, int]:
        return {source: await store.head() for source, store in self.stores.items()}


@asynccontextmanager
async def producers(settings: Settings, directory: Path) -> AsyncIterator[Producers]:
    nc = await nats.connect(settings.nats_url)
    await provision(nc, settings)
    naming = Naming.of(settings)
    dbs = {s: Database(f"sqlite+aiosqlite:///{directory}/{s}.db") for s in PRODUCERS}
    stores = {s: EventStore(db, s) for s, db in dbs.items()}
    for store in stores.values():
        await store.setup()
    relays = {s: OutboxRelay(store, nc, naming) for s, store in stores.items()}
    try:
        yield Producers(nc, stores, relays)
    finally:
        await nc.close()
        for db in dbs.values():
            await db.dispose()


@asynccontextmanager
async def reporting(
    settings: Settings, database_url: str, **kw: Any
) -> AsyncIterator[tuple[Running, httpx.AsyncClient]]:
    async with running(settings, database_url, **kw) as parts:
        gate = signin.gate()
        transport = httpx.ASGITransport(app=build_app(parts.reporting, gate))
        # Signed in as an administrator unless a test says otherwise (`signed_in_http`).
        headers = signin.bearer(signin.grant(gate, "administrator"))
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers
        ) as http:
            http.gate = gate  # type: ignore[attr-defined]  # a test grants other roles on it
            yield parts, http


async def caught_up(parts: Running, heads: dict[str, int], within: float = 30.0) -> None:
    """Wait until the consumer has committed every event the producers published."""

    def done() -> bool:
        if parts.task.done():
            parts.task.result()  # raises what stopped it
        return all(parts.runner.stats[s].checkpoint >= heads[s] for s in heads)

    try:
        await until("reporting caught up", done, within, every=0.02)
    except AssertionError:
        checkpoints = {s: parts.runner.stats[s].checkpoint for s in heads}
        raise AssertionError(f"reporting not caught up: {checkpoints} < {heads}") from None
