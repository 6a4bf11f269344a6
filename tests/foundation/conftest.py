"""Fixtures for the foundation's stories: a store, a bus, and calls to record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import orjson
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.eventstore import Database, EventStore
from shared.settings import Settings


@pytest_asyncio.fixture(loop_scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def store(db: Database) -> EventStore:
    event_store = EventStore(db, "hotline")
    await event_store.setup()
    return event_store


@pytest.fixture
def naming(settings: Settings) -> Naming:
    return Naming.of(settings)


@pytest_asyncio.fixture(loop_scope="session")
async def nc(settings: Settings, naming: Naming) -> AsyncIterator[NATS]:
    client = await nats.connect(settings.nats_url)
    await ensure_streams(client, event_stream_specs(naming, ["hotline"], 1, 120))
    yield client
    await client.close()


@pytest.fixture
def stream_messages(nc: NATS, naming: Naming) -> Callable[[], object]:
    """Every message on the HOTLINE stream, in sequence order."""

    async def read() -> list[nats.aio.msg.Msg]:
        js = nc.jetstream()
        info = await js.stream_info(naming.stream("hotline"))
        return [
            await js.get_msg(naming.stream("hotline"), seq=seq)
            for seq in range(1, info.state.last_seq + 1)
        ]

    return read


@pytest.fixture
def reporting_db(database_url: str) -> Database:
    """A consumer's own database, of the same kind as the producer's under test."""
    return Database(database_url.replace("x.db", "reporting.db"))


@pytest.fixture
def last_dead_letter(nc: NATS, naming: Naming) -> Callable[[], Awaitable[dict[str, Any]]]:
    """The entry the consumer named "reporting" last published to the dead letters."""

    async def read() -> dict[str, Any]:
        entry = await nc.jetstream().get_last_msg(
            naming.dead_letter_stream, naming.dead_letter_subject("reporting")
        )
        letter: dict[str, Any] = orjson.loads(entry.data)
        return letter

    return read
