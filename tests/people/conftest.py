"""A people service on real parts (see people_parts.py), on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from people_parts import People, start_people

from shared.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def people(settings: Settings, database_url: str, tmp_path: Path) -> AsyncIterator[People]:
    async for running in start_people(settings, database_url, tmp_path / "keys" / "master.json"):
        yield running
