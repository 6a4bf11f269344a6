"""One service's database: SQLite file by default, PostgreSQL by URL, the same code on both.

Writes go through `Database.write()`, one transaction at a time per process on SQLite
(``BEGIN IMMEDIATE`` on a single pooled connection, so a transaction never fails half-way on
a lock upgrade); on PostgreSQL the event log's head row is the lock (see `store.py`).
Readers use their own connections and never block writers (WAL on SQLite).

On SQLite the writer's transaction begins with its first statement, in that statement's trip
to aiosqlite's thread, and ends straight on the driver when only the driver was used (see
`OneTripConnection`): SQLAlchemy's begin and commit cost more than the statements of a
group commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy import Connection, MetaData, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.compat import sqlite as internals
from shared.compat.sqlite import Result, on_thread, sqlite3_of
from shared.eventstore.schema import metadata

Step = tuple[str, Sequence[Any]]
"""A statement and its parameters."""


class Database:
    def __init__(self, url: str, *, echo: bool = False, durable: bool = True) -> None:
        """``durable=False`` (SQLite): a commit is on disk by the next WAL checkpoint, not
        when it returns (``synchronous=NORMAL``); a power loss can undo the last commits but
        never corrupts. Only for a read model that is folded again from the bus when its
        checkpoint goes back; an event store is the record, and stays durable."""
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._changed = asyncio.Event()
        self.commits = 0  # write transactions committed in this process
        self._commit_waiters: list[asyncio.Future[None]] = []
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # URL options (a URI, a timeout…) are SQLAlchemy's to apply: its own connection;
            # so too where aiosqlite's internals are not as expected (shared/compat/sqlite.py).
            self._one_trip = not self.url.query and internals.one_trip()
            connect = _one_trip_connector(database or ":memory:") if self._one_trip else None
            self.writer = create_async_engine(
                self.url,
                echo=echo,
                pool_size=1,
                max_overflow=0,
                pool_timeout=120,
                async_creator=connect,
                # `write` ends every transaction itself (shielded), so the pool's rollback on
                # return would be one more trip to aiosqlite's thread for nothing.
                pool_reset_on_return=None,
            )
            # Pooled: opening a SQLite connection (and aiosqlite's thread) costs ~2 ms, more
            # than most reads. WAL lets these readers run beside the one writer.
            # No rollback on return either: SQLAlchemy ends a transaction it began when the
            # connection closes, and a statement straight to the driver (`sqlite_driver`)
            # runs in none.
            self.reader = create_async_engine(
                self.url,
                echo=echo,
                pool_size=4,
                max_overflow=4,
                async_creator=connect,
                pool_reset_on_return=None,
            )
            synchronous = "FULL" if durable else "NORMAL"
            _sqlite_pragmas(self.writer, begin=_IMMEDIATE, lazy=self._one_trip, sync=synchronous)
            _sqlite_pragmas(self.reader, begin="BEGIN", lazy=False, sync=synchronous)
        else:
            self._one_trip = False
            self.writer = create_async_engine(
                self.url, echo=echo, pool_size=8, max_overflow=8, pool_pre_ping=True
            )
            self.reader = self.writer

    async def create_schema(self, *more: MetaData) -> None:
        """Create shared/'s tables and a service's own (idempotent), and add the nullable
        columns a table made by an older Kapok lacks (the only kind of change so far)."""
        async with self.writer.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Two instances starting at once on a new database would both create the
                # tables, and one fail on PostgreSQL's catalogue (pg_type's unique index):
                # one at a time, the second then finds them made.
                await conn.execute(text("SELECT pg_advisory_xact_lock(2020012600)"))
            for tables in (metadata, *more):
                await conn.run_sync(tables.create_all)
                await conn.run_sync(_add_missing_columns, tables)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: commits when the block ends, rolls back whole on error.

        The end of the transaction (commit or rollback, then returning the connection) runs
        shielded from cancellation. A cancelled request or consumer (anyio cancel scopes
        cancel again at every await) would otherwise interrupt the rollback itself and leave
        a SQLite connection holding the write lock: every later writer then fails with
        "database is locked".
        """
        conn = await self.writer.connect()
        try:
            if not self._one_trip:  # there the first statement begins it (`_statement`)
                await conn.begin()
            yield conn
        except BaseException:
            await _shielded(_end(conn, commit=False))
            raise
        await _shielded(_end(conn, commit=True))
        self.commits += 1
        self._changed.set()
        waiters, self._commit_waiters = self._commit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.reader.connect() as conn:
            yield conn

    async def wait_for_change(self, seconds: float) -> None:
        """Wake when a write in this process committed, or after ``seconds``."""
        with suppress(TimeoutError):
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a
            # cancellation arriving as the wait ends (CPython gh-86296), and a cancelled
            # relay or consumer would then run on. The same holds wherever Kapok waits.
            async with asyncio.timeout(seconds):
                await self._changed.wait()
        self._changed.clear()

    async def wait_for_commit(self, seen: int, seconds: float) -> None:
        """Wake once a write in this process committed after ``seen`` (a value of `commits`),
        at once if one has, or after ``seconds``. Unlike `wait_for_change`, waiters never
        take a wake-up from one another, and none is lost between reading `commits` and
        waiting."""
        if self.commits != seen:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._commit_waiters.append(waiter)
        try:
            with suppress(TimeoutError):
                async with asyncio.timeout(seconds):  # not wait_for: see wait_for_change
                    await waiter
        finally:
            with suppress(ValueError):  # gone if a commit woke it
                self._commit_waiters.remove(waiter)

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _add_missing_columns(conn: Connection, tables: MetaData) -> None:
    inspector = inspect(conn)
    for table in tables.sorted_tables:
        present = {column["name"] for column in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:
                if not column.nullable:
                    raise RuntimeError(f"{table.name}.{column.name}: a NOT NULL column to add")
                kind = column.type.compile(dialect=conn.dialect)
                conn.execute(text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'))


def sqlite_driver(conn: AsyncConnection) -> OneTripConnection | None:
    """The aiosqlite connection under ``conn`` on SQLite (None on PostgreSQL, or on a SQLite
    URL with options, where SQLAlchemy connects), for the few statements run hundreds of times
    a second, where SQLAlchemy's building, compiling and result handling cost more than
    SQLite's work. Same transaction as ``conn``.

    Read from the connection SQLAlchemy holds, not through `get_raw_connection` (a greenlet
    per call: 9 µs, four times a group commit)."""
    if conn.dialect.name != "sqlite":
        return None
    driver = conn.sync_connection.connection.driver_connection
    return driver if isinstance(driver, OneTripConnection) else None


async def _end(conn: AsyncConnection, *, commit: bool) -> None:
    try:
        if conn.in_transaction() or (driver := sqlite_driver(conn)) is None:
            # SQLAlchemy began it (a statement through it): it ends it, on the driver too.
            await (conn.commit() if commit else conn.rollback())
        elif driver.in_transaction:  # only the driver's statements ran
            try:
                await (driver.commit() if commit else driver.rollback())
            except BaseException:
                # As SQLAlchemy does when its commit fails: nothing stays half-open on the
                # pooled connection (a failed COMMIT can leave the transaction active).
                if driver.in_transaction:
                    await driver.rollback()
                raise
    finally:
        await conn.close()


async def _shielded(ending: Coroutine[Any, Any, None]) -> None:
    """Run ``ending`` to completion even if the caller is cancelled meanwhile (the caller
    still sees its cancellation)."""
    task = asyncio.ensure_future(ending)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # Keep waiting for the clean-up, however often we are cancelled, then re-raise.
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
        raise


_IMMEDIATE = "BEGIN IMMEDIATE"


def _sqlite_pragmas(engine: AsyncEngine, *, begin: str, lazy: bool, sync: str) -> None:
    """``begin``: how a transaction begins; ``lazy``: with its first statement, in that
    statement's trip (the writer's one-trip connections), not as a statement of its own."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that returned is on disk; the store is the record of what happened.
        cursor.execute(f"PRAGMA synchronous={sync}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
        if lazy:  # from now on, no statement on it runs outside a transaction
            record.driver_connection.begin_with = begin

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        if not lazy:
            conn.exec_driver_sql(begin)


# -- aiosqlite in fewer trips ---------------------------------------------------------------
#
# aiosqlite runs every call on the connection's own thread, and SQLAlchemy's adapter makes
# four calls a statement (open a cursor, execute, fetch, close): a group commit took 17 trips
# to that thread and back, the relay's read 8, each a wake-up of the thread and of the event
# loop. `_OneTripCursor` opens, executes, fetches and closes in one; on the writer, the
# BEGIN IMMEDIATE rides along with a transaction's first statement, and the store's insert
# takes the log head's move along (`OneTripConnection.run_many`): a group commit of single
# calls went from six trips to four (three where its check is kept: `EventCheck`).


def _one_trip_connector(database: str) -> Callable[[], Awaitable[aiosqlite.Connection]]:
    async def connect() -> aiosqlite.Connection:
        # As SQLAlchemy's aiosqlite dialect connects (its thread a daemon), with our cursor.
        connection = OneTripConnection(
            functools.partial(sqlite3.connect, database, check_same_thread=False), 64
        )
        internals.daemon(connection)
        return await connection

    return connect


class OneTripConnection(aiosqlite.Connection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set on the writer once connected: what a statement outside a transaction runs
        # first, in the statement's own trip (`_statement`).
        self.begin_with: str | None = None

    def cursor(self) -> Any:  # aiosqlite's Result: awaitable, and an async context manager
        return Result(self._one_trip_cursor())

    async def fetch(self, sql: str, parameters: Sequence[Any] = ()) -> list[Any]:
        """The statement's rows, in one trip."""
        return (await on_thread(self, _statement, self, False, sql, parameters))[3]

    async def run(self, sql: str, parameters: Sequence[Any] = ()) -> int:
        """Run the statement in one trip; return its row count."""
        return (await on_thread(self, _statement, self, False, sql, parameters))[1]

    async def run_many(
        self, sql: str, rows: Sequence[Sequence[Any]], then: Step | None = None
    ) -> int:
        """The statement once per row, and ``then`` after it, in one trip; return the
        statement's row count."""
        return (await on_thread(self, _statement, self, True, sql, rows, then))[1]

    async def _one_trip_cursor(self) -> _OneTripCursor:
        return _OneTripCursor(self)


class _OneTripCursor:
    """What SQLAlchemy's adapter uses of an aiosqlite cursor."""

    def __init__(self, connection: OneTripConnection) -> None:
        self._connection = connection
        self._rows: list[Any] = []
        self.description: Any = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self.arraysize = 1

    async def execute(self, sql: str, parameters: Any = ()) -> _OneTripCursor:
        return await self._run(False, sql, parameters)

    async def executemany(self, sql: str, parameters: Any) -> _OneTripCursor:
        return await self._run(True, sql, parameters)

    async def _run(self, many: bool, sql: str, parameters: Any) -> _OneTripCursor:
        connection = self._connection
        self.description, self.rowcount, self.lastrowid, self._rows = await on_thread(
            connection, _statement, connection, many, sql, parameters
        )
        return self

    async def fetchall(self) -> list[Any]:
        rows, self._rows = self._rows, []
        return rows

    async def fetchone(self) -> Any:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        count = self.arraysize if size is None else size
        rows, self._rows = self._rows[:count], self._rows[count:]
        return rows

    async def close(self) -> None:
        self._rows = []

    async def __aenter__(self) -> _OneTripCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._rows = []


def _statement(
    connection: OneTripConnection, many: bool, sql: str, parameters: Any, then: Step | None = None
) -> tuple[Any, int, int | None, list[Any]]:
    """On the connection's thread: the transaction begun if one is due, one statement, all
    its rows, its cursor closed; then ``then``."""
    db = sqlite3_of(connection)
    if connection.begin_with is not None and not db.in_transaction:
        db.execute(connection.begin_with).close()
    cursor = db.cursor()
    try:
        if many:
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
        rows = cursor.fetchall() if cursor.description else []
        outcome = cursor.description, cursor.rowcount, cursor.lastrowid, rows
    finally:
        cursor.close()
    if then is not None:
        db.execute(*then).close()
    return outcome
