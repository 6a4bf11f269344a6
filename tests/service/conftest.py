"""The toy tally service (service_parts.py) on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from service_parts import tally_service

from shared.service.application import CommandService


@pytest_asyncio.fixture(loop_scope="session")
async def tally(database_url: str) -> AsyncIterator[CommandService]:
    async for service in tally_service(database_url):
        yield service
