"""Tables the hotline keeps beside its events, always written in the transaction that appends
the events they belong to, so they can never disagree with the store.

- ``hotline_idempotency``: Idempotency-Key → the first response (`shared.service.idempotency`).
- ``hotline_open_shifts``: worker → their open shift. "One open shift per worker" spans
  aggregates (each shift is its own stream), so no single aggregate's version can guard it.
  The primary key on ``worker`` can: the row is inserted with ShiftStarted and deleted with
  ShiftEnded, in the same transaction, and two racing starts cannot both commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

import orjson
from sqlalchemy import Column, MetaData, String, Table, cast, delete, func, select
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.database import sqlite_driver
from shared.eventstore.schema import events
from shared.service.idempotency import idempotency_table

metadata = MetaData()
idempotency = idempotency_table(metadata, "hotline")

open_shifts = Table(
    "hotline_open_shifts",
    metadata,
    Column("worker", String(64), primary_key=True),
    Column("shift", String(128), nullable=False, unique=True),
)

_CHUNK = 500


async def open_shifts_of(conn: AsyncConnection, workers: Sequence[str]) -> dict[str, str]:
    """worker → open shift, for those of ``workers`` who have one."""
    found: dict[str, str] = {}
    for start in range(0, len(workers), _CHUNK):
        chunk = list(workers[start : start + _CHUNK])
        result = await conn.execute(
            select(open_shifts.c.worker, open_shifts.c.shift).where(open_shifts.c.worker.in_(chunk))
        )
        found.update({str(w): str(s) for w, s in result})
    return found


async def claim_shifts(conn: AsyncConnection, opened: Mapping[str, str]) -> None:
    if opened:
        await conn.execute(
            open_shifts.insert(), [{"worker": w, "shift": s} for w, s in opened.items()]
        )


async def release_shifts(conn: AsyncConnection, shifts: Iterable[str]) -> None:
    ids = list(shifts)
    for start in range(0, len(ids), _CHUNK):
        await conn.execute(
            delete(open_shifts).where(open_shifts.c.shift.in_(ids[start : start + _CHUNK]))
        )


# What a point takes: the records a closure may not be dated before.
RECORDS_AT_A_POINT = ("CallReceived", "ShiftStarted", "FollowUpScheduled")


async def last_record_at(
    conn: AsyncConnection, point: str, after: int = 0
) -> tuple[tuple[str, datetime] | None, int]:
    """The record made at ``point`` dated last (its stream and business time) among the
    events after position ``after``, and the last position that was read. Found in the events
    themselves, as closures are: a point closes once, so a scan of the records then is
    affordable, where a table written with every call would cost every call."""
    if conn.dialect.name == "sqlite":
        point_of = func.json_extract(events.c.body, "$.data.point")
    else:
        point_of = cast(events.c.body, JSONB)["data"]["point"].astext
    rows = await conn.execute(
        select(events.c.position, events.c.stream_id, events.c.body).where(
            events.c.position > after,
            events.c.type.in_(RECORDS_AT_A_POINT),
            point_of == point,
        )
    )
    last: tuple[str, datetime] | None = None
    read = after
    for position, stream, body in rows:
        read = max(read, int(position))
        at = datetime.fromisoformat(orjson.loads(body)["occurred_at"])
        if last is None or at > last[1]:
            last = (str(stream), at)
    return last, read


async def closed_points_among(conn: AsyncConnection, points: Sequence[str]) -> list[str]:
    """Which of ``points`` have a HotlinePointClosed in the store (read from the events
    themselves, so there is no second record of a closure to keep in step)."""
    closed: list[str] = []
    driver = sqlite_driver(conn)
    for start in range(0, len(points), _CHUNK):
        chunk = list(points[start : start + _CHUNK])
        if driver is not None:
            # Every call's commit asks this: straight to the driver, as `sqlite_driver` says.
            marks = ", ".join("?" * len(chunk))
            rows = await driver.fetch(
                "SELECT stream_id FROM events WHERE type = 'HotlinePointClosed' "
                f"AND stream_id IN ({marks})",
                chunk,
            )
            closed.extend(str(row[0]) for row in rows)
            continue
        result = await conn.execute(
            select(events.c.stream_id).where(
                events.c.stream_id.in_(chunk), events.c.type == "HotlinePointClosed"
            )
        )
        closed.extend(str(row[0]) for row in result)
    return closed
