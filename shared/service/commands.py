"""The base of every command model, and the field types commands share.

The same models validate HTTP bodies and NATS requests, from the raw JSON bytes in pydantic's
strict JSON mode: ISO 8601 strings become datetimes, but "3" is not a number, an unknown
field is refused, and every error names its field.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Annotated, ClassVar
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from shared.settings import Settings

# Clocks of stations' laptops drift; a minute of grace keeps an honest "now" from a slightly
# fast clock acceptable while a typed-in future date (a wrong year, a wrong month) is refused.
CLOCK_SKEW = timedelta(seconds=60)
# A day's log of a station in one request: all or nothing, one transaction.
MAX_BATCH = 5000


# A plan (a follow-up's due time, a campaign's dates) looks at most this far ahead.
PLAN_AHEAD = timedelta(days=366)


@cache
def records_start() -> datetime:
    """The first instant a record may be dated: midnight in Guangzhou of the service's start
    of records (`Settings.records_start`). Read once per process."""
    day = Settings().records_start
    return datetime.combine(day, time(), ZoneInfo("Asia/Shanghai"))


def _in_window(value: datetime) -> datetime:
    if value < records_start():
        raise ValueError(f"is before the start of records ({records_start().isoformat()})")
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("is in the future: record what happened, not what will")
    return value


def _planned(value: datetime) -> datetime:
    if value < records_start():
        raise ValueError(f"is before the start of records ({records_start().isoformat()})")
    if value > datetime.now(UTC) + PLAN_AHEAD:
        raise ValueError(f"is more than {PLAN_AHEAD.days} days ahead")
    return value


def _planned_day(value: date) -> date:
    _planned(datetime.combine(value, time(), records_start().tzinfo))
    return value


_WINDOW = "from the service's start of records (KAPOK_RECORDS_START, default 2020-01-01, "
Happened = Annotated[
    AwareDatetime,
    AfterValidator(_in_window),
    Field(description=_WINDOW + "midnight in Guangzhou) to now; with its offset"),
]
"""When something happened: with an offset (a naive time is refused), not before the start of
records and not yet to come."""

Planned = Annotated[
    AwareDatetime,
    AfterValidator(_planned),
    Field(description=_WINDOW + f"midnight in Guangzhou) to {PLAN_AHEAD.days} days ahead"),
]
"""When something is planned to happen (a follow-up's due time): inside the records' window
or up to `PLAN_AHEAD` ahead."""

PlannedDay = Annotated[
    date,
    AfterValidator(_planned_day),
    Field(description=_WINDOW + f"in Guangzhou) to {PLAN_AHEAD.days} days ahead"),
]
"""A day a plan names (a campaign's start or end), in the same window as `Planned`."""


class Command(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)
    # A void or a correction (`corrections.Void`): only the roles that correct may ask it.
    corrects: ClassVar[bool] = False

    @classmethod
    def name(cls) -> str:
        return cls.__name__


@contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while a batch is validated or decided. 5,000 items allocate tens
    of thousands of objects, which triggers collections that each walk the whole heap (about
    half the time when measured). The block must never await, so no other request runs
    meanwhile; whatever cyclic garbage it makes is collected after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
