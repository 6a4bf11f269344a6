"""Calls taken at Nanzhou's hotline point: what the stories of the store, the relay and the
consumer runner append."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nats.aio.client import Client as NATS

from shared.bus.naming import Naming
from shared.contracts import Context, NewEvent
from shared.contracts.hotline import CallReceived
from shared.contracts.types import Place
from shared.eventstore import Append, EventStore
from shared.relay import OutboxRelay

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


async def published(store: EventStore, nc: NATS, naming: Naming, count: int) -> None:
    """``count`` calls appended to ``store`` and published by its relay."""
    await store.append_all(calls(0, count), Context())
    await OutboxRelay(store, nc, naming).publish_pending()
