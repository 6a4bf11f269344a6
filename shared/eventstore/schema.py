"""Tables shared/ keeps in every service's database."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text, UniqueConstraint

metadata = MetaData()

# An integer key: SQLite stores it as the rowid itself (a random-UUID key made batched
# inserts several times slower when measured).
Position = BigInteger().with_variant(Integer(), "sqlite")

events = Table(
    "events",
    metadata,
    Column("position", Position, primary_key=True, autoincrement=False),
    Column("stream_id", String(128), nullable=False),
    Column("version", Integer, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("type", String(64), nullable=False),
    # The canonical bytes exactly as hashed and published: the relay sends them unchanged.
    Column("body", Text, nullable=False),
    UniqueConstraint("stream_id", "version", name="events_stream_version"),
)

# One row per source: the last position and hash. Appenders lock it, so positions are handed
# out in commit order and the hash chain has exactly one successor per link.
log_head = Table(
    "event_log_head",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# How far the outbox relay got: written only after JetStream acknowledged.
outbox_progress = Table(
    "outbox_progress",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("republished", BigInteger, nullable=False, default=0),
)

# A consumer's checkpoint per source, committed with the state it produced.
checkpoints = Table(
    "consumer_checkpoints",
    metadata,
    Column("consumer", String(64), primary_key=True),
    Column("source", String(32), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("dead_letters", BigInteger, nullable=False, default=0),
    # The hash of the last event applied there (its successor's prev_hash must be it): NULL
    # in a database made before the consumers checked the chain, which then trust one link.
    Column("hash", String(64), nullable=True),
    # The last position that held the source's own event: every one after it up to `position`
    # was dead-lettered as a stranger's, and is examined again if the stream is re-created
    # (`kapok bus repair`). NULL in an older database: the same as `position`.
    Column("genuine", BigInteger, nullable=True),
    Column("last_dead_letter", Text, nullable=True),  # why the last one was dead-lettered
)
