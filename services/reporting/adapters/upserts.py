"""``INSERT … ON CONFLICT DO UPDATE SET value = value + excluded.value`` for many rows, at the
cost of the database's own work: compiled once per dialect, rows as plain tuples.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.eventstore.database import sqlite_driver

ROWS_PER_STATEMENT = 2048  # 4 columns: 8,192 placeholders, SQLite's limit is 32,766 or more


def insert(dialect: Dialect, table: Table, key: Sequence[str]) -> Any:
    """The upsert adding ``value`` to the row of the same ``key``, in the dialect's words."""
    stmt = (sqlite if dialect.name == "sqlite" else postgresql).insert(table)
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={"value": table.c.value + stmt.excluded.value}
    )


def statement_rows(left: int) -> int:
    """The rows of the next statement: the largest 2^k or 3 × 2^k that ``left`` holds, at
    most `ROWS_PER_STATEMENT`."""
    if left >= ROWS_PER_STATEMENT:
        return ROWS_PER_STATEMENT
    shift = max(left.bit_length() - 2, 0)
    return (left >> shift) << shift  # the two leading bits of ``left``: 2^k or 3 × 2^k


@dataclass(slots=True)
class Upsert:
    """The upsert of one table, its rows tuples in ``columns`` order (the value last).

    On SQLite (``?`` placeholders) rows go as a few multi-row ``VALUES`` statements, not as
    an executemany: sqlite3 releases and takes back the GIL around every row it steps, and
    while the consumer's thread decodes the next batch each take-back can wait out the
    interpreter's switch interval. Each statement holds 2^k or 3 × 2^k rows (2048, 1536,
    1024, 768, … 1): at most 22 distinct statements whatever the batch sizes (sqlite3 keeps
    every distinct statement it prepared, 128 of them, and one per row count had the process
    grow by a hundred megabytes of prepared statements), and about 3.7 statements a batch of
    the benchmark's, where powers of two alone took 6 (each costs a trip to aiosqlite's
    thread).

    On PostgreSQL (asyncpg's ``$n``), one statement a batch whatever its rows: each column's
    values bound as one array and the rows made by ``unnest`` (`bulk`). The driver's
    executemany, which it replaces, pipelined but ran the statement once per row: the
    server's backends spent about 31 µs of CPU per event of the benchmark's history (1.8 rows
    each), beside the live fold on the same cores. Elsewhere, the driver's executemany.

    The rows of one call must have distinct keys (a statement may not update a row twice):
    they are a batch's sums, one per key."""

    sql: str
    processors: dict[int, Callable[[Any], Any]]  # column -> the type's bind processor
    multirow: bool
    bulk: str | None = None  # the one-statement upsert of column arrays (PostgreSQL)
    _statements: dict[int, str] = field(default_factory=dict)  # rows -> multi-row SQL

    @classmethod
    def compile(cls, dialect: Dialect, table: Table, columns: Sequence[str]) -> Upsert | None:
        """None where the placeholders are named or in another order (the caller then uses
        SQLAlchemy's own executemany)."""
        statement = insert(dialect, table, columns[:-1])
        compiled = statement.compile(dialect=dialect, column_keys=list(columns))
        if not dialect.positional or tuple(compiled.positiontup or ()) != tuple(columns):
            return None
        processors = {}
        for at, name in enumerate(columns):
            processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[at] = processor
        bulk = None
        if dialect.name == "postgresql" and dialect.paramstyle == "numeric_dollar":
            head, rest = compiled.string.split(" VALUES ", 1)
            conflict = rest.split(" ON CONFLICT ", 1)[1]
            arrays = ", ".join(
                f"${at}::{table.c[name].type.compile(dialect=dialect)}[]"
                for at, name in enumerate(columns, 1)
            )
            bulk = f"{head} SELECT * FROM unnest({arrays}) ON CONFLICT {conflict}"
        return cls(compiled.string, processors, dialect.paramstyle == "qmark", bulk)

    def statement(self, rows: int) -> str:
        """The upsert of ``rows`` rows in one ``VALUES`` list (``?`` placeholders only)."""
        sql = self._statements.get(rows)
        if sql is None:
            head, rest = self.sql.split(" VALUES ", 1)
            one, tail = rest.split(" ON CONFLICT ", 1)
            sql = f"{head} VALUES {', '.join([one] * rows)} ON CONFLICT {tail}"
            self._statements[rows] = sql
        return sql

    async def run(self, conn: AsyncConnection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows already through `processors` (the caller does it once per distinct value)."""
        if self.bulk is not None:
            await conn.exec_driver_sql(self.bulk, tuple(map(list, zip(*rows, strict=True))))
            return
        if not self.multirow:
            await conn.exec_driver_sql(self.sql, list(rows))
            return
        # Straight to aiosqlite: one trip a statement, about 34 µs of CPU where SQLAlchemy's
        # exec_driver_sql took about 90 (measured).
        driver = sqlite_driver(conn)
        first = 0
        while first < len(rows):
            size = statement_rows(len(rows) - first)
            values = tuple(itertools.chain.from_iterable(rows[first : first + size]))
            if driver is not None:
                await driver.run(self.statement(size), values)
            else:
                await conn.exec_driver_sql(self.statement(size), values)
            first += size


_COMPILED: dict[tuple[str, str, str], Upsert | None] = {}


def compiled(dialect: Dialect, table: Table, columns: Sequence[str]) -> Upsert | None:
    """`Upsert.compile`, once per dialect, driver and table."""
    which = (dialect.name, dialect.driver, table.name)
    if which not in _COMPILED:
        _COMPILED[which] = Upsert.compile(dialect, table, columns)
    return _COMPILED[which]


async def upsert(
    conn: AsyncConnection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Add each row's value (last) to the row of ``table`` with the same other columns."""
    if not rows:
        return
    fast = compiled(conn.dialect, table, columns)
    if fast is not None:
        await fast.run(conn, rows)
        return
    statement = insert(conn.dialect, table, columns[:-1])
    await conn.execute(statement, [dict(zip(columns, row, strict=True)) for row in rows])
