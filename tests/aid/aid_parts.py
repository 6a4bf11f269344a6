"""The running parts of an aid service under test, and how a test talks to them: the
session's nats-server, a fresh database, the HTTP app in-process (httpx over ASGI) and the
NATS handlers on the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import orjson
from nats.aio.client import Client as NATS

from services.aid.application.commands import COMMANDS
from services.aid.application.service import aid_service
from services.aid.entrypoints.http import build_aid_app
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.service.application import CommandService
from shared.service.nats import build_broker, start
from shared.settings import Settings


@dataclass
class Aid:
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
            self.naming.command_subject("aid", command),
            orjson.dumps(body),
            timeout=30,
            headers=headers or None,
        )
        return orjson.loads(reply.data)  # type: ignore[no-any-return]

    async def stored(self) -> int:
        return await self.service.store.head()

    async def published(self) -> list[dict[str, Any]]:
        """Run the relay once, then every event on the AID stream, in order."""
        await self.relay.publish_pending()
        js = self.nc.jetstream()
        stream = self.naming.stream("aid")
        last = (await js.stream_info(stream)).state.last_seq
        return [orjson.loads((await js.get_msg(stream, seq)).data) for seq in range(1, last + 1)]


async def start_aid(settings: Settings, database_url: str) -> AsyncIterator[Aid]:
    naming = Naming.of(settings)
    db = Database(database_url)
    service = aid_service(EventStore(db, "aid"))
    await service.setup()
    nc = await nats.connect(settings.nats_url)
    await ensure_streams(nc, event_stream_specs(naming, ["hotline", "aid"], 1, 120.0))
    broker = build_broker(settings.nats_url, service, naming, COMMANDS)
    await start(broker)
    transport = httpx.ASGITransport(app=build_aid_app(service))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://aid") as http:
            yield Aid(service, http, nc, naming, OutboxRelay(service.store, nc, naming))
    finally:
        await broker.stop()
        await nc.close()
        await db.dispose()
