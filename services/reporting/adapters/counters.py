"""The counters in SQL: daily buckets, upserted a batch at a time, summed "as of" a day.

One table, ``reporting_counter_days``: a row per (metric, business day, every dimension),
its value an integer (counts, fen, thousandths of a unit). The unique key leads with
(metric, day), so "as of D" is an index range scan summing the buckets up to D, cheap on live
data however long the history: nothing is recomputed from events per query.

A batch's increments are added up in memory by the fold first, then written with one
executemany of ``INSERT … ON CONFLICT DO UPDATE SET value = value + excluded.value`` (the
dialect's own insert, the same statement on SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.domain.fold import DIMENSIONS, Fold, Key
from shared.contracts.aid import AidCancelled, AidDelivered, AidRequested
from shared.contracts.envelope import Envelope
from shared.eventstore.database import Database

metadata = MetaData()

counter_days = Table(
    "reporting_counter_days",
    metadata,
    Column("metric", String(48), nullable=False),
    Column("day", Date, nullable=False),
    Column("net", String(16), nullable=False),
    Column("district", String(16), nullable=False),
    Column("street", String(120), nullable=False),
    Column("station", String(64), nullable=False),
    Column("organisation", String(64), nullable=False),
    Column("point", String(64), nullable=False),
    Column("grp", String(16), nullable=False),
    Column("category", String(32), nullable=False),
    Column("unit", String(16), nullable=False),
    Column("campaign", String(64), nullable=False),
    Column("value", BigInteger, nullable=False),
    UniqueConstraint("metric", "day", *DIMENSIONS, name="reporting_counter_days_key"),
)

# The aid requests still open, with the dimensions their gauge +1 went on: the fold's only
# state besides the counters, read and written a batch at a time in the batch's transaction.
open_requests = Table(
    "reporting_open_requests",
    metadata,
    Column("request", String(64), primary_key=True),
    Column("dims", Text, nullable=False),
)

KEY_COLUMNS = ("metric", "day", *DIMENSIONS)
GROUPABLE = ("metric", "day", *DIMENSIONS)


def _insert(conn: AsyncConnection) -> Any:
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    stmt = dialect.insert(counter_days)
    return stmt.on_conflict_do_update(
        index_elements=list(KEY_COLUMNS),
        set_={"value": counter_days.c.value + stmt.excluded.value},
    )


async def upsert(conn: AsyncConnection, increments: Mapping[Key, int]) -> int:
    """Add a batch's increments to their rows; returns how many rows it touched."""
    rows = [{**key._asdict(), "value": value} for key, value in increments.items() if value]
    if rows:
        await conn.execute(_insert(conn), rows)
    return len(rows)


_REQUEST_EVENTS = (AidRequested, AidDelivered, AidCancelled)


async def apply_batch(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
    """The consumer runner's handler: fold a batch and write it in the runner's transaction
    (which also commits the checkpoint, so a batch counts once or not at all)."""
    refs = {e.data.request for e in events if isinstance(e.data, _REQUEST_EVENTS)}
    known: dict[str, dict[str, str]] = {}
    if refs:
        rows = await conn.execute(
            select(open_requests.c.request, open_requests.c.dims).where(
                open_requests.c.request.in_(refs)
            )
        )
        known = {r.request: orjson.loads(r.dims) for r in rows}
    fold = Fold(open_requests=dict(known))
    fold.apply_all(events)
    await upsert(conn, fold.increments)
    closed = set(known) - set(fold.open_requests)
    opened = set(fold.open_requests) - set(known)
    if closed:
        await conn.execute(delete(open_requests).where(open_requests.c.request.in_(closed)))
    if opened:
        await conn.execute(
            open_requests.insert(),
            [{"request": r, "dims": orjson.dumps(fold.open_requests[r]).decode()} for r in opened],
        )


class CounterStore:
    """Reads of the counters (writes happen only through `apply_batch`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def setup(self) -> None:
        await self.db.create_schema(metadata)

    async def totals(
        self, as_of: date | None = None, filters: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """Every metric's cumulative value over the days up to ``as_of`` (None: all)."""
        rows = await self.counters(as_of, filters or {}, by=("metric",))
        return {r["metric"]: r["value"] for r in rows}

    async def counters(
        self,
        as_of: date | None,
        filters: Mapping[str, str | Iterable[str]],
        by: Sequence[str],
        since: date | None = None,
    ) -> list[dict[str, Any]]:
        """Sums grouped by ``by`` (metric, day or dimensions), filtered on any of them."""
        unknown = [name for name in (*by, *filters) if name not in GROUPABLE]
        if unknown:
            raise ValueError(f"unknown dimension {unknown[0]!r}; known: {', '.join(GROUPABLE)}")
        columns = [counter_days.c[name] for name in by]
        query = select(*columns, func.sum(counter_days.c.value).label("value"))
        for name, wanted in filters.items():
            values = [wanted] if isinstance(wanted, str) else list(wanted)
            query = query.where(counter_days.c[name].in_(values))
        if as_of is not None:
            query = query.where(counter_days.c.day <= as_of)
        if since is not None:
            query = query.where(counter_days.c.day >= since)
        query = query.group_by(*columns).order_by(*columns)
        async with self.db.read() as conn:
            result = await conn.execute(query)
            return [
                {**{name: _plain(getattr(row, name)) for name in by}, "value": int(row.value)}
                for row in result
            ]


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value
