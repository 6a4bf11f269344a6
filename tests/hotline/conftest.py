"""A hotline service on real parts: the session's nats-server, a fresh SQLite or PostgreSQL
database, the HTTP app in-process (httpx over ASGI) and the NATS handlers on the server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from hotline_parts import Hotline, start_hotline

from shared.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def hotline(settings: Settings, database_url: str) -> AsyncIterator[Hotline]:
    async for running in start_hotline(settings, database_url):
        yield running
