"""The running parts of a hotline under test, and how a test talks to them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import orjson
from nats.aio.client import Client as NATS
from nats.errors import NoRespondersError

from services.hotline.application.commands import COMMANDS
from services.hotline.application.service import hotline_service
from services.hotline.entrypoints.http import build_hotline_app
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.service.application import CommandService
from shared.service.nats import build_broker, start
from shared.settings import Settings


@dataclass
class Hotline:
    service: CommandService
    http: httpx.AsyncClient
    nc: NATS
    naming: Naming
    relay: OutboxRelay

    async def post(
        self, path: str, body: Any, key: str | None = None, **headers: str
    ) -> httpx.Response:
        if key is not None:
            headers["Idempotency-Key"] = key
        return await self.http.post(path, content=orjson.dumps(body), headers=headers)

    async def request(
        self, command: str, body: Any, key: str | None = None, **headers: str
    ) -> dict[str, Any]:
        """A NATS request-reply to the command's subject; the decoded reply."""
        if key is not None:
            headers["Idempotency-Key"] = key
        reply = await self.nc.request(
            self.naming.command_subject("hotline", command),
            orjson.dumps(body),
            timeout=30,
            headers=headers or None,
        )
        return orjson.loads(reply.data)  # type: ignore[no-any-return]

    async def stored(self) -> int:
        """How many events the store holds."""
        return await self.service.store.head()

    async def published(self) -> list[dict[str, Any]]:
        """Run the relay once, then every event on the HOTLINE stream, in order."""
        await self.relay.publish_pending()
        js = self.nc.jetstream()
        stream = self.naming.stream("hotline")
        last = (await js.stream_info(stream)).state.last_seq
        return [orjson.loads((await js.get_msg(stream, seq)).data) for seq in range(1, last + 1)]

    async def stream_count(self) -> int:
        await self.relay.publish_pending()
        info = await self.nc.jetstream().stream_info(self.naming.stream("hotline"))
        return int(info.state.messages)


async def answering(nc: NATS, naming: Naming, seconds: float = 10.0) -> None:
    """Wait until the command handlers answer (an empty command: a 422). `start` already
    flushes the subscriptions; on a loaded machine a request has still, rarely, met "no
    responders" right after start-up, and a test must not fail on that window."""
    subject = naming.command_subject("hotline", "OpenHotlinePoint")
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            await nc.request(subject, b"{}", timeout=seconds)
            return
        except NoRespondersError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def start_hotline(settings: Settings, database_url: str) -> AsyncIterator[Hotline]:
    naming = Naming.of(settings)
    db = Database(database_url)
    service = hotline_service(EventStore(db, "hotline"))
    await service.setup()
    nc = await nats.connect(settings.nats_url)
    await ensure_streams(nc, event_stream_specs(naming, ["hotline"], 1, 120.0))
    broker = build_broker(settings.nats_url, service, naming, COMMANDS)
    await start(broker)
    await answering(nc, naming)
    transport = httpx.ASGITransport(app=build_hotline_app(service))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://hotline") as http:
            yield Hotline(service, http, nc, naming, OutboxRelay(service.store, nc, naming))
    finally:
        await broker.stop()
        await nc.close()
        await db.dispose()
