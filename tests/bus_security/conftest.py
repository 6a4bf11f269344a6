"""A nats-server configured as `kapok up` configures its own (Kapok's identities, nobody
anonymous), its streams provisioned by the administrator; and a connection per identity that
records what the server refused it."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from kapok.identities import embedded_auth, provision_as_admin, signed_in_as
from shared.bus.auth import ADMIN, Keyring
from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.runtime import connect_options
from shared.settings import Settings

# `kapok up` is started as the tests of tests/up start it: one copy of its helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "up"))


@dataclass
class Identity:
    """One identity's connection, and every refusal the server sent it."""

    nc: NATS
    refusals: list[str] = field(default_factory=list)

    async def refused(self, action: Callable[[], Awaitable[object]]) -> str:
        """Run ``action`` and return the server's refusal of it (fails when none comes)."""
        before = len(self.refusals)
        # A refused request gets no answer: its own timeout is not the point here.
        with contextlib.suppress(nats.errors.TimeoutError, asyncio.TimeoutError):
            await action()
        await self.nc.flush()
        for _ in range(100):
            if len(self.refusals) > before:
                return self.refusals[before]
            await asyncio.sleep(0.02)
        raise AssertionError("the server refused nothing")

    async def allowed(self, action: Callable[[], Awaitable[object]]) -> object:
        before = len(self.refusals)
        result = await action()
        # Twice: nats-py's first PING can overtake what waits in its buffer (a SUB), as
        # shared/service/nats.py's start() says; by the second PONG the server has it all.
        await self.nc.flush()
        await self.nc.flush()
        assert self.refusals[before:] == []
        return result


@dataclass
class SecuredBus:
    url: str
    keyring: Keyring
    naming: Naming
    settings: Settings

    @contextlib.asynccontextmanager
    async def connect(self, identity: str) -> AsyncIterator[Identity]:
        who = Identity(nc=NATS())

        async def error(e: Exception) -> None:
            who.refusals.append(str(e))

        signed_in = signed_in_as(self.settings, self.keyring, identity)
        who.nc = await nats.connect(
            self.url,
            allow_reconnect=False,
            error_cb=error,
            **connect_options(signed_in, identity),
        )
        try:
            yield who
        finally:
            await who.nc.close()


@pytest_asyncio.fixture(scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredBus]:
    data_dir: Path = tmp_path_factory.mktemp("secured")
    naming = Naming()
    keyring = Keyring.of(data_dir)
    async with EmbeddedNats(data_dir, port=0, server_auth=embedded_auth(keyring, naming)) as srv:
        settings = Settings(nats_url=srv.url, data_dir=data_dir, stream_replicas=1)
        await provision_as_admin(signed_in_as(settings, keyring, ADMIN))
        yield SecuredBus(srv.url, keyring, naming, settings)
