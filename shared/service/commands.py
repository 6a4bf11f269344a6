"""The base of every command model, and the field types commands share.

The same models validate HTTP bodies and NATS requests, from the raw JSON bytes in pydantic's
strict JSON mode: ISO 8601 strings become datetimes, but "3" is not a number, an unknown
field is refused, and every error names its field.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict

# Clocks of stations' laptops drift; a minute of grace keeps an honest "now" from a slightly
# fast clock acceptable while a typed-in future date (a wrong year, a wrong month) is refused.
CLOCK_SKEW = timedelta(seconds=60)
# A day's log of a station in one request: all or nothing, one transaction.
MAX_BATCH = 5000


def _not_in_future(value: datetime) -> datetime:
    if value > datetime.now(UTC) + CLOCK_SKEW:
        raise ValueError("is in the future: record what happened, not what will")
    return value


Happened = Annotated[AwareDatetime, AfterValidator(_not_in_future)]
"""When something happened: with an offset (a naive time is refused) and not yet to come."""


class Command(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

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
