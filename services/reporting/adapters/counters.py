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

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    delete,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
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
    # The key is the primary key and, on SQLite, the table is clustered on it (no rowid):
    # an upsert then walks and writes one B-tree instead of the unique index and the table,
    # about a fifth less time a row and half the file. A database made before keeps its
    # unique index, which the upsert's conflict target matches just as well.
    PrimaryKeyConstraint("metric", "day", *DIMENSIONS, name="reporting_counter_days_key"),
    sqlite_with_rowid=False,
)

# Every metric's value over all days, kept with the daily buckets in the same transaction:
# the live headline (the KV bucket and the dashboard read it after every commit) is then a
# read of a few rows, not a sum over every bucket ever written.
metric_totals = Table(
    "reporting_metric_totals",
    metadata,
    Column("metric", String(48), primary_key=True),
    Column("value", BigInteger, nullable=False),
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


def _insert(dialect: Dialect) -> Any:
    stmt = (sqlite if dialect.name == "sqlite" else postgresql).insert(counter_days)
    return stmt.on_conflict_do_update(
        index_elements=list(KEY_COLUMNS),
        set_={"value": counter_days.c.value + stmt.excluded.value},
    )


NATURAL_ORDER = (*Key._fields, "value")


ROWS_PER_STATEMENT = 1024  # 13,312 placeholders: SQLite's limit is 32,766 or more


@dataclass(slots=True)
class _Upsert:
    """The upsert compiled once per dialect and run without SQLAlchemy's per-row parameter
    handling (most of the live fold's write time when measured): each row a plain tuple in
    `Key` order plus the value, through the column types' bind processors where there are
    any (the date, on SQLite).

    On SQLite (``?`` placeholders) a batch goes as a few multi-row ``VALUES`` statements,
    not as an executemany: sqlite3 releases and takes back the GIL around every row it
    steps, and while the consumer's thread decodes the next batch each take-back can wait
    out the interpreter's switch interval. The statements hold a power of two of rows
    (1024, 512, … 1), so there are eleven of them whatever the batch sizes: sqlite3 keeps
    every distinct statement it prepared (128 of them), and one per row count had the
    process grow by a hundred megabytes of prepared statements. Elsewhere (asyncpg's
    ``$n``), the driver's executemany, which pipelines."""

    sql: str
    processors: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column, processor)
    multirow: bool
    _statements: dict[int, str] = field(default_factory=dict)  # rows -> multi-row SQL

    @classmethod
    def compile(cls, dialect: Dialect) -> _Upsert | None:
        """None where the placeholders are named or in another order (SQLAlchemy's own
        executemany is used there)."""
        compiled = _insert(dialect).compile(dialect=dialect, column_keys=list(NATURAL_ORDER))
        if not dialect.positional or tuple(compiled.positiontup or ()) != NATURAL_ORDER:
            return None
        processors = []
        for at, name in enumerate(NATURAL_ORDER):
            processor = counter_days.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors.append((at, processor))
        return cls(compiled.string, tuple(processors), dialect.paramstyle == "qmark")

    def rows(self, increments: Mapping[Key, int]) -> list[tuple[Any, ...]]:
        if not self.processors:
            return [(*key, value) for key, value in increments.items() if value]
        rows = [[*key, value] for key, value in increments.items() if value]
        for at, processor in self.processors:
            # A batch's rows share a few distinct values per column (its days): each is
            # processed once, not once a row (SQLite's date formatting is Python code).
            done = {value: processor(value) for value in {row[at] for row in rows}}
            for row in rows:
                row[at] = done[row[at]]
        return [tuple(row) for row in rows]

    def statement(self, rows: int) -> str:
        """The upsert of ``rows`` rows in one ``VALUES`` list (``?`` placeholders only)."""
        sql = self._statements.get(rows)
        if sql is None:
            head, rest = self.sql.split(" VALUES ", 1)
            one, tail = rest.split(" ON CONFLICT ", 1)
            sql = f"{head} VALUES {', '.join([one] * rows)} ON CONFLICT {tail}"
            self._statements[rows] = sql
        return sql

    async def run(self, conn: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        if not self.multirow:
            await conn.exec_driver_sql(self.sql, rows)
            return
        first, size = 0, ROWS_PER_STATEMENT
        while first < len(rows):
            while first + size > len(rows) and size > 1:
                size //= 2
            chunk = rows[first : first + size]
            await conn.exec_driver_sql(
                self.statement(size), tuple(itertools.chain.from_iterable(chunk))
            )
            first += size


_UPSERTS: dict[tuple[str, str], _Upsert | None] = {}


async def upsert(conn: AsyncConnection, increments: Mapping[Key, int]) -> int:
    """Add a batch's increments to their rows; returns how many rows it touched."""
    dialect = conn.dialect
    which = (dialect.name, dialect.driver)
    if which not in _UPSERTS:
        _UPSERTS[which] = _Upsert.compile(dialect)
    upserts = _UPSERTS[which]
    if upserts is None:
        rows = [{**key._asdict(), "value": value} for key, value in increments.items() if value]
        if rows:
            await conn.execute(_insert(dialect), rows)
        return len(rows)
    fast = upserts.rows(increments)
    if fast:
        await upserts.run(conn, fast)
    return len(fast)


def _totals_insert(dialect: Dialect) -> Any:
    stmt = (sqlite if dialect.name == "sqlite" else postgresql).insert(metric_totals)
    return stmt.on_conflict_do_update(
        index_elements=["metric"], set_={"value": metric_totals.c.value + stmt.excluded.value}
    )


async def add_totals(conn: AsyncConnection, increments: Mapping[Key, int]) -> None:
    """Add a batch's increments to the running totals per metric (a few dozen rows). A
    metric gets its row exactly when `upsert` writes one of its buckets (a non-zero
    increment), even if its batch sums to zero (a request opened and closed), so the totals
    name the same metrics as the sum over the buckets."""
    by_metric: dict[str, int] = {}
    for key, value in increments.items():
        if value:
            by_metric[key.metric] = by_metric.get(key.metric, 0) + value
    rows = [{"metric": m, "value": v} for m, v in by_metric.items()]
    if rows:
        await conn.execute(_totals_insert(conn.dialect), rows)


# Looked up by exact type: isinstance on a pydantic model class goes through its metaclass's
# Python-level __instancecheck__, about a microsecond per event of the batch.
_REQUEST_EVENTS = frozenset({AidRequested, AidDelivered, AidCancelled})


async def apply_batch(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
    """The consumer runner's handler: fold a batch and write it in the runner's transaction
    (which also commits the checkpoint, so a batch counts once or not at all)."""
    refs = {e.data.request for e in events if type(e.data) in _REQUEST_EVENTS}
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
    await add_totals(conn, fold.increments)
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
        """The tables, and the totals summed again from the buckets: they are the record, so a
        database from before the totals table (or any drift) is put right at each start."""
        await self.db.create_schema(metadata)
        async with self.db.write() as conn:
            await conn.execute(delete(metric_totals))
            summed = select(counter_days.c.metric, func.sum(counter_days.c.value))
            await conn.execute(
                metric_totals.insert().from_select(
                    ["metric", "value"], summed.group_by(counter_days.c.metric)
                )
            )

    async def totals(
        self, as_of: date | None = None, filters: Mapping[str, str] | None = None
    ) -> dict[str, int]:
        """Every metric's cumulative value over the days up to ``as_of`` (None: all)."""
        if as_of is None and not filters:
            async with self.db.read() as conn:
                result = await conn.execute(select(metric_totals.c.metric, metric_totals.c.value))
                return {row.metric: int(row.value) for row in result}
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
