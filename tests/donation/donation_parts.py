"""The running parts of a donation service under test: the session's nats-server, a fresh
database, the HTTP app in-process (httpx over ASGI) and the NATS handlers on the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nats
import orjson
from nats.aio.client import Client as NATS

from services.donation.application.commands import COMMANDS
from services.donation.application.service import donation_service
from services.donation.entrypoints.http import build_donation_app
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.service.application import CommandService
from shared.service.nats import build_broker, start
from shared.settings import Settings


@dataclass
class Donation:
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
            self.naming.command_subject("donation", command),
            orjson.dumps(body),
            timeout=30,
            headers=headers or None,
        )
        return orjson.loads(reply.data)  # type: ignore[no-any-return]

    async def launch(self, body: dict[str, Any]) -> str:
        response = await self.post("/campaigns", body)
        assert response.status_code == 201, response.text
        return str(response.json()["campaign"])

    async def stock(self, campaign: str) -> dict[tuple[str, str], str]:
        response = await self.http.get(f"/campaigns/{campaign}/stock")
        assert response.status_code == 200, response.text
        return {(s["kind"], s["unit"]): s["quantity"] for s in response.json()["stock"]}

    async def stored(self) -> int:
        return await self.service.store.head()

    async def published(self) -> list[dict[str, Any]]:
        """Run the relay once, then every event on the DONATION stream, in order."""
        await self.relay.publish_pending()
        js = self.nc.jetstream()
        stream = self.naming.stream("donation")
        last = (await js.stream_info(stream)).state.last_seq
        return [orjson.loads((await js.get_msg(stream, seq)).data) for seq in range(1, last + 1)]


async def start_donation(settings: Settings, database_url: str) -> AsyncIterator[Donation]:
    naming = Naming.of(settings)
    db = Database(database_url)
    service = donation_service(EventStore(db, "donation"))
    await service.setup()
    nc = await nats.connect(settings.nats_url)
    await ensure_streams(nc, event_stream_specs(naming, ["aid", "donation"], 1, 120.0))
    broker = build_broker(settings.nats_url, service, naming, COMMANDS)
    await start(broker)
    transport = httpx.ASGITransport(app=build_donation_app(service))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://donation") as http:
            yield Donation(service, http, nc, naming, OutboxRelay(service.store, nc, naming))
    finally:
        await broker.stop()
        await nc.close()
        await db.dispose()
