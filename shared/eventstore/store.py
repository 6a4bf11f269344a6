"""The event store: atomic appends with optimistic concurrency, positions in commit order,
and the source's hash chain, all in the one transaction that also serves as the outbox.

Why positions never show a gap to a reader: every append first locks the source's head row
(`event_log_head`) and only then takes the next positions. A second appender waits on that
lock until the first commits, so position N+1 can never be visible while N is still
uncommitted and appears later. The same lock gives the hash chain exactly one successor
per link.
"""

from __future__ import annotations

import gc
import itertools
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.envelope import GENESIS, Context, Envelope, NewEvent, sealed, uuid7_str
from shared.contracts.registry import REGISTRY, EventRegistry
from shared.contracts.signatures import Signer
from shared.eventstore.database import Database, sqlite_driver
from shared.eventstore.schema import events, log_head


class ConcurrencyError(Exception):
    """The aggregate changed since it was loaded: nothing was written."""

    def __init__(self, stream_id: str, expected: int, actual: int | None) -> None:
        self.stream_id, self.expected, self.actual = stream_id, expected, actual
        found = "a newer version" if actual is None else f"version {actual}"
        super().__init__(f"{stream_id}: expected version {expected}, found {found}")


@dataclass(frozen=True, slots=True)
class Append:
    """Events for one aggregate, on top of the version the decision was made on."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    event_id: str
    type: str
    body: str


class StoredBytes(NamedTuple):
    """A tuple, not a frozen dataclass: the relay makes one per event it sends, and a frozen
    dataclass's constructor (an ``object.__setattr__`` per field) was 4% of the hotline's
    main thread in the 2020 scenario."""

    position: int
    event_id: str
    type: str
    body: bytes


@dataclass(slots=True)
class OpenLog:
    """The source's head as a transaction holding its lock has moved it so far."""

    position: int
    hash: str
    written: int  # the position the head row holds (on SQLite, each insert moves it)


_IN_CHUNK = 500

Row = tuple[int, str, int, str, str, bytes]
"""An event's row: position, stream_id, version, event_id, type, body (its UTF-8 bytes)."""
_COLUMNS = ("position", "stream_id", "version", "event_id", "type", "body")
_SQLITE_HEAD = "SELECT position, hash FROM event_log_head WHERE source = ?"
_SQLITE_MOVE_HEAD = "UPDATE event_log_head SET position = ?, hash = ? WHERE source = ?"
_SQLITE_READ_BYTES_FROM = (
    "SELECT position, event_id, type, CAST(body AS BLOB) FROM events WHERE position > ? "
    "ORDER BY position LIMIT ?"
)
_SQLITE_READ_FROM = (
    "SELECT position, event_id, type, body FROM events WHERE position > ? ORDER BY position LIMIT ?"
)
_SQLITE_INSERT = (
    # The body bound as its UTF-8 bytes and stored as the TEXT they encode: decoding a body
    # with non-ASCII text (a street's name) into str, for the driver to encode it again,
    # cost a microsecond an event on each side.
    f"INSERT INTO events ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT)) "
    "ON CONFLICT (stream_id, version) DO NOTHING"
)


# Events a group commit of this process just committed, kept for the relay (`committed`).
_TAIL = 10_000


class EventStore:
    def __init__(
        self,
        db: Database,
        source: str,
        registry: EventRegistry = REGISTRY,
        signer: Signer | None = None,
    ) -> None:
        self.db = db
        self.source = source
        self.registry = registry
        # Signs every `signer.every`th event and each append's last (None: nothing signed).
        self.signer = signer
        # The last events committed here, at consecutive positions, as `read_bytes_from`
        # would read them: the relay reads what a group commit just wrote from memory, not
        # the database (its read was a pooled connection and a trip to another thread per
        # wake-up, about as often as the group commits).
        self._tail: deque[StoredBytes] = deque(maxlen=_TAIL)
        self._tail_at = -1  # `db.commits` when it was last extended

    async def setup(self) -> None:
        await self.db.create_schema()
        async with self.db.write() as conn:
            exists = await conn.scalar(
                select(log_head.c.position).where(log_head.c.source == self.source)
            )
            if exists is None:
                await conn.execute(
                    log_head.insert().values(source=self.source, position=0, hash=GENESIS)
                )

    async def append(
        self, stream_id: str, expected_version: int, new: Sequence[NewEvent], ctx: Context
    ) -> int:
        """Append atomically; return the last position. Stale version: ConcurrencyError."""
        async with self.db.write() as conn:
            return await self.append_in(conn, [Append(stream_id, expected_version, new)], ctx)

    async def append_all(self, appends: Sequence[Append], ctx: Context) -> int:
        async with self.db.write() as conn:
            return await self.append_in(conn, appends, ctx)

    async def append_in(
        self, conn: AsyncConnection, appends: Sequence[Append], ctx: Context
    ) -> int:
        """Append inside the caller's transaction (a handler committing its checkpoint too)."""
        if not any(a.events for a in appends):
            return await self.head(conn)
        log = await self.lock_in(conn)
        await self.add_in(conn, log, appends, ctx)
        await self.release_in(conn, log)
        return log.position

    async def lock_in(self, conn: AsyncConnection) -> OpenLog:
        """Lock the source's head row in the caller's transaction: the log as it stands, for
        `add_in` (several appends in one transaction take the head once)."""
        if (driver := sqlite_driver(conn)) is not None:
            # On SQLite the writer's BEGIN IMMEDIATE is the lock; the statement straight to
            # the driver (SQLAlchemy's building and running of it cost more than the read).
            (row,) = await driver.fetch(_SQLITE_HEAD, (self.source,))
            return OpenLog(int(row[0]), str(row[1]), int(row[0]))
        head = (
            await conn.execute(
                select(log_head.c.position, log_head.c.hash)
                .where(log_head.c.source == self.source)
                .with_for_update()
            )
        ).one()
        position = int(head.position)
        return OpenLog(position, str(head.hash), position)

    async def release_in(self, conn: AsyncConnection, log: OpenLog) -> None:
        """Write the head `add_in` moved ``log`` to (nothing if the head row holds it)."""
        if log.position == log.written:
            return
        if (driver := sqlite_driver(conn)) is not None:
            await driver.run(_SQLITE_MOVE_HEAD, (log.position, log.hash, self.source))
        else:
            await conn.execute(
                log_head.update()
                .where(log_head.c.source == self.source)
                .values(position=log.position, hash=log.hash)
            )
        log.written = log.position

    async def add_in(
        self, conn: AsyncConnection, log: OpenLog, appends: Sequence[Append], ctx: Context
    ) -> None:
        """Append after ``log`` (locked by `lock_in` in this transaction) and move it on; the
        head row is written by `release_in`. Raises as `append_in` does (the caller's
        transaction must then roll back)."""
        await self.add_all_in(conn, log, [(appends, ctx)])

    async def add_all_in(
        self,
        conn: AsyncConnection,
        log: OpenLog,
        decisions: Sequence[tuple[Sequence[Append], Context]],
    ) -> list[Row]:
        """`add_in` for several decisions' appends, each with its own context, in order and
        in one insert; return the rows inserted (for `committed`)."""
        every = [(a, ctx) for appends, ctx in decisions for a in appends if a.events]
        if not every:
            return []
        appends = [a for a, _ in every]
        # A new aggregate (expected version 0) needs no look-up: if its stream exists, the
        # insert of its version 1 conflicts on (stream_id, version), which is checked below.
        # Looking up thousands of new ids per batch was the slow part of a batch on PostgreSQL.
        if len({a.stream_id for a in appends}) != len(appends):
            raise ValueError("an aggregate is appended twice in one transaction")
        await self._check_versions(conn, [a for a in appends if a.expected_version > 0])

        position, prev_hash = log.position, log.hash
        recorded_at = datetime.now(UTC).isoformat()
        source, signer = self.source, self.signer
        rows: list[Row] = []
        # No collection while thousands of events are made: each would walk every young
        # object, and the loop never awaits (nothing else runs meanwhile).
        collecting = gc.isenabled()
        gc.disable()
        try:
            last: Context | None = None
            for append, ctx in every:
                if ctx is not last:
                    last = ctx
                    correlation = str(ctx.correlation_id)
                    causation = str(ctx.causation_id) if ctx.causation_id else None
                version = append.expected_version
                stream_id = append.stream_id
                for new in append.events:
                    event_type = type(new.data)
                    if event_type.source != source:
                        raise ValueError(f"{event_type.type_name()} belongs to {event_type.source}")
                    position += 1
                    version += 1
                    event_id = uuid7_str()
                    type_name = event_type.type_name()
                    # `model_dump(mode="json")` without its Python-side argument handling.
                    payload = new.data.__pydantic_serializer__.to_python(new.data, mode="json")
                    prev_hash, raw = sealed(
                        ctx.actor,
                        causation,
                        correlation,
                        payload,
                        event_id,
                        new.occurred_at.isoformat(),
                        position,
                        prev_hash,
                        recorded_at,
                        event_type.schema_version,
                        source,
                        stream_id,
                        type_name,
                        version,
                    )
                    if signer is not None and position % signer.every == 0:
                        raw = signer.sign(raw, position, prev_hash)
                    rows.append((position, stream_id, version, event_id, type_name, raw))
            if signer is not None and position % signer.every:  # the last, unless just signed
                *row, raw = rows[-1]
                rows[-1] = (*row, signer.sign(raw, position, prev_hash))  # type: ignore[assignment]
        finally:
            if collecting:
                gc.enable()
        if await self._insert(conn, rows, log, (position, prev_hash)) != len(rows):
            # Raising rolls the caller's transaction back: nothing of the batch is written.
            raise await self._clash(conn, rows)
        log.position, log.hash = position, prev_hash
        return rows

    def committed(self, rows: Sequence[Row]) -> None:
        """Rows `add_all_in` inserted in the write transaction of this process that has just
        committed (none since): the running relay's next `read_bytes_from` finds them here.
        The tail is used only while no other write of this process has committed since, so
        it ends at the head as this process knows it; another process's events committed
        after it are read at the relay's next wake-up."""
        if not rows:
            return
        tail = self._tail
        if tail and tail[-1].position + 1 != rows[0][0]:
            tail.clear()  # another writer's events came between: keep the tail gapless
        tail.extend(StoredBytes(row[0], row[3], row[4], row[5]) for row in rows)
        self._tail_at = self.db.commits

    async def _insert(
        self, conn: AsyncConnection, rows: list[Row], log: OpenLog, head: tuple[int, str]
    ) -> int:
        """Insert the rows, skipping any whose (stream_id, version) is taken; return how many
        were inserted. On SQLite the head row moves to ``head`` (position, hash) in the same
        trip."""
        if (driver := sqlite_driver(conn)) is not None:
            # The driver's own executemany: SQLAlchemy's insert of many rows with RETURNING
            # cost more than the rest of recording a call (parameters processed per row in
            # Python, and a row handed back across aiosqlite's thread for each insert).
            # The head's move rides along: a trip of its own was a sixth of a group commit's.
            move = (_SQLITE_MOVE_HEAD, (*head, self.source))
            inserted = await driver.run_many(_SQLITE_INSERT, rows, then=move)
            log.written = head[0]
            return inserted
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        result = await conn.execute(
            insert(events)
            .on_conflict_do_nothing(index_elements=["stream_id", "version"])
            .returning(events.c.position),
            [dict(zip(_COLUMNS, (*row[:5], row[5].decode()), strict=True)) for row in rows],
        )
        return len(result.all())

    async def _clash(self, conn: AsyncConnection, rows: list[Row]) -> ConcurrencyError:
        """The first row whose version another writer took first, as the error to raise."""
        ours = {(row[1], row[2]): row[3] for row in rows}
        streams = sorted({row[1] for row in rows})
        taken: dict[tuple[str, int], str] = {}
        latest: dict[str, int] = {}
        for start in range(0, len(streams), _IN_CHUNK):
            result = await conn.execute(
                select(events.c.stream_id, events.c.version, events.c.event_id).where(
                    events.c.stream_id.in_(streams[start : start + _IN_CHUNK])
                )
            )
            for stream_id, version, event_id in result:
                taken[(stream_id, version)] = event_id
                latest[stream_id] = max(latest.get(stream_id, 0), int(version))
        clash = next(key for key in ours if taken.get(key) != ours[key])
        return ConcurrencyError(clash[0], clash[1] - 1, latest.get(clash[0]))

    async def _check_versions(self, conn: AsyncConnection, appends: Sequence[Append]) -> None:
        expected = {append.stream_id: append.expected_version for append in appends}
        ids = list(expected)
        if not ids:
            return
        actual: dict[str, int] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            result = await conn.execute(
                select(events.c.stream_id, func.max(events.c.version))
                .where(events.c.stream_id.in_(chunk))
                .group_by(events.c.stream_id)
            )
            actual.update({row[0]: int(row[1]) for row in result})
        for stream_id, version in expected.items():
            if actual.get(stream_id, 0) != version:
                raise ConcurrencyError(stream_id, version, actual.get(stream_id, 0))

    async def load(self, stream_id: str) -> list[Envelope[Any]]:
        """The aggregate's events in version order, decoded (and upcast) for the domain."""
        async with self.db.read() as conn:
            result = await conn.execute(
                select(events.c.body)
                .where(events.c.stream_id == stream_id)
                .order_by(events.c.version)
            )
            return [self.registry.decode(row[0]) for row in result]

    async def load_many(self, stream_ids: Sequence[str]) -> dict[str, list[Envelope[Any]]]:
        found: dict[str, list[Envelope[Any]]] = {s: [] for s in stream_ids}
        async with self.db.read() as conn:
            for start in range(0, len(stream_ids), _IN_CHUNK):
                chunk = list(stream_ids[start : start + _IN_CHUNK])
                result = await conn.execute(
                    select(events.c.body)
                    .where(events.c.stream_id.in_(chunk))
                    .order_by(events.c.stream_id, events.c.version)
                )
                for row in result:
                    envelope = self.registry.decode(row[0])
                    found[envelope.stream_id].append(envelope)
        return found

    async def read_from(
        self, after: int, limit: int, conn: AsyncConnection | None = None
    ) -> list[StoredEvent]:
        """Events after a position, in position order: what the relay publishes."""
        query = (
            select(events.c.position, events.c.event_id, events.c.type, events.c.body)
            .where(events.c.position > after)
            .order_by(events.c.position)
            .limit(limit)
        )
        if conn is not None:
            result = await conn.execute(query)
            return [StoredEvent(*row) for row in result]
        async with self.db.read() as own:
            if (driver := sqlite_driver(own)) is not None:
                # The relay reads once per wake-up, hundreds of times a second under single
                # commands: one trip to the driver, no transaction to end.
                rows = await driver.fetch(_SQLITE_READ_FROM, (after, limit))
                return [StoredEvent(*row) for row in rows]
            result = await own.execute(query)
            return [StoredEvent(*row) for row in result]

    async def read_bytes_from(
        self, after: int, limit: int, *, recent: bool = False
    ) -> list[StoredBytes]:
        """`read_from` with each body as its UTF-8 bytes: what the relay sends (on SQLite read
        as bytes, not decoded into text to be encoded again). ``recent``: what this process
        just committed may come from memory (`committed`), the same bytes as stored, and
        then what another process committed after it is read by a later call."""
        tail = self._tail
        while tail and tail[0].position <= after:  # sent: a resend reads the database
            tail.popleft()
        if recent and tail and tail[0].position == after + 1 and self._tail_at == self.db.commits:
            return list(itertools.islice(tail, limit))
        async with self.db.read() as own:
            if (driver := sqlite_driver(own)) is not None:
                rows = await driver.fetch(_SQLITE_READ_BYTES_FROM, (after, limit))
                return [StoredBytes._make(row) for row in rows]
        return [
            StoredBytes(r.position, r.event_id, r.type, r.body.encode())
            for r in await self.read_from(after, limit)
        ]

    async def event_ids_at(self, positions: Sequence[int]) -> dict[int, str]:
        async with self.db.read() as conn:
            result = await conn.execute(
                select(events.c.position, events.c.event_id).where(
                    events.c.position.in_(list(positions))
                )
            )
            return {int(p): str(e) for p, e in result}

    async def head(self, conn: AsyncConnection | None = None) -> int:
        query = select(log_head.c.position).where(log_head.c.source == self.source)
        if conn is not None:
            return int(await conn.scalar(query) or 0)
        async with self.db.read() as own:
            return int(await own.scalar(query) or 0)
