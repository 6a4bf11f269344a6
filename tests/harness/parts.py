"""A command service's running parts under test, and how a test talks to them: the session's
nats-server, a fresh database, the HTTP app in-process (httpx over ASGI) and the NATS
handlers on the server. Each service's tests subclass ``Running`` (its ``name``, and helpers
of its own) and start it with ``run``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import httpx
import nats
import orjson
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from harness import databases, signin
from shared.auth.gate import Gate
from shared.auth.principal import Role
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.service.application import CommandService
from shared.service.commands import Command
from shared.service.nats import build_broker, start
from shared.settings import Settings


@dataclass
class Running:
    name: ClassVar[str]  # the service's: its commands' subjects, its events' stream
    commands: ClassVar[Mapping[str, type[Command]]]  # what its NATS handlers take

    service: CommandService
    http: httpx.AsyncClient
    nc: NATS
    naming: Naming
    relay: OutboxRelay
    gate: Gate  # the service's: `grant` issues it a token of any role
    token: str  # an administrator's: every request a test makes signs in with it by default

    def grant(self, role: Role | str, **scope: str | None) -> str:
        return signin.grant(self.gate, role, **scope)

    def as_actor(
        self, actor: str, role: Role | str = Role.ADMINISTRATOR, **scope: str | None
    ) -> dict[str, str]:
        """The headers of a token issued to ``actor``: what its events will name."""
        return signin.bearer(self.grant(role, actor=actor, **scope))

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
        headers.setdefault("Authorization", f"Bearer {self.token}")
        reply = await self.nc.request(
            self.naming.command_subject(self.name, command),
            orjson.dumps(body),
            timeout=30,
            headers=headers or None,
        )
        return orjson.loads(reply.data)  # type: ignore[no-any-return]

    @contextlib.asynccontextmanager
    async def replica(self) -> AsyncIterator[None]:
        """A second replica's NATS handlers, on the same service and database, until exit."""
        broker = build_broker(
            self.nc.connected_url.geturl(), self.service, self.gate, self.naming, self.commands
        )
        await start(broker)
        try:
            yield
        finally:
            await broker.stop()

    async def stored(self) -> int:
        return await self.service.store.head()

    async def published(self) -> list[dict[str, Any]]:
        """Run the relay once, then every event on the service's stream, in order."""
        await self.relay.publish_pending()
        js = self.nc.jetstream()
        stream = self.naming.stream(self.name)
        last = (await js.stream_info(stream)).state.last_seq
        return [orjson.loads((await js.get_msg(stream, seq)).data) for seq in range(1, last + 1)]


R = TypeVar("R", bound=Running)


async def run(
    kind: type[R],
    settings: Settings,
    database_url: str,
    *,
    service: Callable[[EventStore], CommandService],
    app: Callable[[CommandService, Gate], FastAPI],
    streams: Sequence[str],
) -> AsyncIterator[R]:
    """``kind``'s service on a fresh store in ``database_url``, event ``streams`` ensured
    (its own among them), its NATS handlers started and its app behind an httpx client."""
    naming = Naming.of(settings)
    db = Database(database_url)
    running = service(EventStore(db, kind.name))
    await running.setup()
    nc = await nats.connect(settings.nats_url)
    await ensure_streams(nc, event_stream_specs(naming, list(streams), 1, 120.0))
    gate = signin.gate()
    token = signin.grant(gate, Role.ADMINISTRATOR)
    broker = build_broker(settings.nats_url, running, gate, naming, kind.commands)
    await start(broker)
    transport = httpx.ASGITransport(app=app(running, gate))
    # Signed in as an administrator and sending JSON unless a test says otherwise.
    headers = {**signin.bearer(token), "Content-Type": "application/json"}
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers
        ) as http:
            relay = OutboxRelay(running.store, nc, naming)
            yield kind(running, http, nc, naming, relay, gate, token)
    finally:
        await broker.stop()
        await nc.close()
        await db.dispose()


async def sqlite_store(directory: Path, name: str) -> EventStore:
    """Another service's event store, set up on a SQLite file of its own in ``directory``
    (the caller disposes of ``store.db``): the upstream whose events the service under test
    consumes."""
    store = EventStore(Database(databases.sqlite_url(directory / name)), name)
    await store.setup()
    return store
