"""Fixtures for the foundation's stories: a store, a bus, and calls to record."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta, timezone

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NATS

from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.contracts import NewEvent
from shared.contracts.hotline import CallReceived
from shared.contracts.types import Place
from shared.eventstore import Append, Database, EventStore
from shared.settings import Settings

CST = timezone(timedelta(hours=8))
NANZHOU = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)


def call(i: int) -> NewEvent:
    """The i-th call taken at Nanzhou's hotline point."""
    return NewEvent(
        CallReceived(
            call=f"call:{i}",
            point="point:nanzhou-1",
            place=NANZHOU,
            category="emotional_support",
            group="elderly_alone",
            channel="phone",
        ),
        datetime(2020, 2, 1, 9, tzinfo=CST) + timedelta(minutes=i),
    )


def calls(first: int, count: int) -> list[Append]:
    """New call aggregates, one event each, as a station's day log would append them."""
    return [Append(f"call-{i}", 0, [call(i)]) for i in range(first, first + count)]


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
