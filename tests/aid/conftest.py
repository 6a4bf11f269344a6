"""An aid service on real parts (see aid_parts.py), on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aid_parts import Aid, start_aid

from shared.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def aid(settings: Settings, database_url: str) -> AsyncIterator[Aid]:
    async for running in start_aid(settings, database_url):
        yield running
