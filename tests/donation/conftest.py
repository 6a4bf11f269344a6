"""A donation service on real parts (see donation_parts.py), on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from donation_parts import Donation, start_donation

from shared.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def donation(settings: Settings, database_url: str) -> AsyncIterator[Donation]:
    async for running in start_donation(settings, database_url):
        yield running
