"""Tables the hotline keeps beside its events, always written in the transaction that appends
the events they belong to, so they can never disagree with the store.

- ``hotline_idempotency``: Idempotency-Key → the first response. A retried request finds its
  key and gets that response back; nothing is appended a second time.
- ``hotline_open_shifts``: worker → their open shift. "One open shift per worker" spans
  aggregates (each shift is its own stream), so no single aggregate's version can guard it.
  The primary key on ``worker`` can: the row is inserted with ShiftStarted and deleted with
  ShiftEnded, in the same transaction, and two racing starts cannot both commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Column, Integer, MetaData, String, Table, Text, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.schema import events, log_head

metadata = MetaData()

idempotency = Table(
    "hotline_idempotency",
    metadata,
    Column("key", String(200), primary_key=True),
    # sha256 of the command (its type and validated content): the same key with another
    # request is refused instead of answered with a response that is not its own.
    Column("fingerprint", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("body", Text, nullable=False),
)

open_shifts = Table(
    "hotline_open_shifts",
    metadata,
    Column("worker", String(64), primary_key=True),
    Column("shift", String(128), nullable=False, unique=True),
)

_CHUNK = 500


async def stored_reply(conn: AsyncConnection, key: str) -> tuple[str, int, str] | None:
    row = (
        await conn.execute(
            select(idempotency.c.fingerprint, idempotency.c.status, idempotency.c.body).where(
                idempotency.c.key == key
            )
        )
    ).first()
    return (str(row[0]), int(row[1]), str(row[2])) if row else None


async def save_reply(
    conn: AsyncConnection, key: str, fingerprint: str, status: int, body: str
) -> None:
    await conn.execute(
        idempotency.insert().values(key=key, fingerprint=fingerprint, status=status, body=body)
    )


async def stored_replies(
    conn: AsyncConnection, keys: Sequence[str]
) -> dict[str, tuple[str, int, str]]:
    """key → (fingerprint, status, body) for those of ``keys`` already answered."""
    found: dict[str, tuple[str, int, str]] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start : start + _CHUNK])
        result = await conn.execute(
            select(
                idempotency.c.key,
                idempotency.c.fingerprint,
                idempotency.c.status,
                idempotency.c.body,
            ).where(idempotency.c.key.in_(chunk))
        )
        found.update({str(k): (str(f), int(s), str(b)) for k, f, s, b in result})
    return found


async def save_replies(conn: AsyncConnection, rows: list[dict[str, object]]) -> None:
    """Rows of key, fingerprint, status, body."""
    if rows:
        await conn.execute(idempotency.insert(), rows)


async def lock_log(conn: AsyncConnection, source: str) -> None:
    """Take the source's head-row lock that every append takes (see shared/eventstore/store.py)
    now, so the checks that follow read what no other writer can change before the commit."""
    await conn.execute(
        select(log_head.c.position).where(log_head.c.source == source).with_for_update()
    )


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


async def claim_shifts(conn: AsyncConnection, opened: dict[str, str]) -> None:
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


async def closed_points_among(conn: AsyncConnection, points: Sequence[str]) -> list[str]:
    """Which of ``points`` have a HotlinePointClosed in the store (read from the events
    themselves, so there is no second record of a closure to keep in step)."""
    closed: list[str] = []
    for start in range(0, len(points), _CHUNK):
        chunk = list(points[start : start + _CHUNK])
        result = await conn.execute(
            select(events.c.stream_id).where(
                events.c.stream_id.in_(chunk), events.c.type == "HotlinePointClosed"
            )
        )
        closed.extend(str(row[0]) for row in result)
    return closed
