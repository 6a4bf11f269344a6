"""What the services' stories share: their business time (the morning of 2020-02-10 in
Guangzhou) and aggregates rebuilt from events at minutes of it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import TypeVar

from shared.contracts.envelope import Event
from shared.domain.aggregate import Aggregate

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
MORNING = datetime(2020, 2, 10, 9, 0, tzinfo=CST)

A = TypeVar("A", bound=Aggregate)


def at(minutes: int) -> datetime:
    """Business time: minutes after 09:00 on 2020-02-10 in Guangzhou."""
    return MORNING + timedelta(minutes=minutes)


def given(kind: type[A], id: str, *events: tuple[Event, int]) -> A:
    """An aggregate rebuilt from (event, minutes after 09:00) pairs, as the store would."""
    aggregate = kind(id)
    for version, (data, minute) in enumerate(events, start=1):
        aggregate.apply(data, at(minute))
        aggregate.version = version
    return aggregate
