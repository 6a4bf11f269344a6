"""The reporting tables, and the rebuild of counters made with an older schema.

A counter's key is compact: the metric and the ten dimensions are small integers naming rows
of ``reporting_metrics`` and ``reporting_dims`` (one row per distinct combination of the ten
dimensions), so ``reporting_counter_days`` is keyed by (metric_id, day, dims_id). The upsert
then compares and writes a few bytes a row instead of twelve text columns: measured on
300,000 events with `bench.reporting_write`, see `counters`.

The counters are a read model derived from the streams: a database whose counters have
another layout is not converted but folded again. `rebuild_if_old` drops the reporting tables
and resets the reporting consumer's checkpoints in one transaction, so the runner re-creates
its durables from the start of each stream and the fold applies every event once more.
"""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    delete,
    inspect,
)
from sqlalchemy.engine import Connection, Dialect

from services.reporting.domain.fold import DIMENSIONS
from shared.eventstore.database import Database
from shared.eventstore.schema import checkpoints

CONSUMER = "reporting"  # the consumer runner's name, whose checkpoints a rebuild resets
log = logging.getLogger("kapok.reporting")

metadata = MetaData()

# Ids are given by the writer (`keys.KeyIds`), never by the database: the writer caches them
# and must know them before the row is inserted.
metrics = Table(
    "reporting_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("name", String(48), nullable=False, unique=True),
)

dims = Table(
    "reporting_dims",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    *(Column(name, String(120), nullable=False) for name in DIMENSIONS),
    UniqueConstraint(*DIMENSIONS, name="reporting_dims_key"),
)

_EPOCH = date(1970, 1, 1).toordinal()


class Day(TypeDecorator[date]):
    """A business day kept as its number of days since 1970-01-01: SQLite stores and
    compares an integer of two or three bytes where a date is ten characters of text, about
    a fifth of its work per upserted row (measured); PostgreSQL an int4, as big as a date."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: date | None, dialect: Dialect) -> int | None:
        return None if value is None else value.toordinal() - _EPOCH

    def process_result_value(self, value: int | None, dialect: Dialect) -> date | None:
        return None if value is None else date.fromordinal(value + _EPOCH)


counter_days = Table(
    "reporting_counter_days",
    metadata,
    Column("metric_id", Integer, nullable=False),
    Column("day", Day, nullable=False),
    Column("dims_id", Integer, nullable=False),
    Column("value", BigInteger, nullable=False),
    # The key leads with (metric, day): "as of D" for a metric is a range scan, and a
    # batch's rows (a few metrics, the same day or two) lie close together, so a commit
    # writes few pages. On SQLite the table is clustered on its key (no rowid): an upsert
    # walks and writes one B-tree. No foreign keys: SQLite would check both parents on
    # every upserted row, and the writer adds the parents first in the same transaction.
    PrimaryKeyConstraint("metric_id", "day", "dims_id", name="reporting_counter_days_key"),
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

# The voids and corrections folded (`fold.Revision`), one row each: what `/api/revisions`
# lists, and what a report "as known at" an instant undoes (those recorded after it).
# ``recorded_at`` is UTC text of one fixed width, so it compares as it sorts on both
# databases; ``first_day`` the earliest business day it changed; ``changes`` JSON
# ``[[day, metric, change], …]``. Few rows: one per void.
revisions = Table(
    "reporting_revisions",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("source", String(16), nullable=False),
    Column("type", String(48), nullable=False),
    Column("fact", String(64), nullable=False),
    Column("recorded_at", String(27), nullable=False, index=True),
    Column("first_day", Day, nullable=False),
    Column("actor", String(120), nullable=False),
    Column("reason", Text, nullable=False),
    Column("changes", Text, nullable=False),
)

# What tells this layout from the earlier one (twelve text columns in the key).
_MARK = "dims_id"


def _older_layout(conn: Connection) -> list[str] | None:
    """The counters table's columns if it exists without this layout's mark, else None."""
    inspector = inspect(conn)
    if not inspector.has_table(counter_days.name):
        return None
    columns = [column["name"] for column in inspector.get_columns(counter_days.name)]
    return None if _MARK in columns else columns


def _drop_all(conn: Connection) -> None:
    metadata.drop_all(conn, checkfirst=True)


async def rebuild_if_old(db: Database) -> bool:
    """Drop counters of an older layout and reset the consumer to fold again from the start;
    True if it did. One transaction: the checkpoints never outlive the counters they count."""
    async with db.write() as conn:
        columns = await conn.run_sync(_older_layout)
        if columns is None:
            return False
        log.warning(
            "reporting: %s has an older layout (%s); dropping the reporting tables and "
            "resetting consumer %r to fold HOTLINE, AID and DONATION again from the start",
            counter_days.name,
            ", ".join(columns),
            CONSUMER,
        )
        await conn.run_sync(_drop_all)
        await conn.execute(delete(checkpoints).where(checkpoints.c.consumer == CONSUMER))
    return True
