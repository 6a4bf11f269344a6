"""What the bus security stories share: a connection per identity that records what the
server refused it, and the bus they connect to (the ``secured`` fixture, conftest.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client as NATS

from kapok.identities import signed_in_as
from shared.bus.auth import Keyring
from shared.bus.naming import Naming
from shared.runtime import connect_options
from shared.settings import Settings


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
