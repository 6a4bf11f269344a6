"""One service's database: SQLite file by default, PostgreSQL by URL, the same code on both.

Writes go through `Database.write()`, one transaction at a time per process on SQLite
(``BEGIN IMMEDIATE`` on a single pooled connection, so a transaction never fails half-way on
a lock upgrade); on PostgreSQL the event log's head row is the lock (see `store.py`).
Readers use their own connections and never block writers (WAL on SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import MetaData, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from shared.eventstore.schema import metadata


class Database:
    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = make_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        self._changed = asyncio.Event()
        if self.is_sqlite:
            database = self.url.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.writer = create_async_engine(
                self.url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=120
            )
            # Pooled: opening a SQLite connection (and aiosqlite's thread) costs ~2 ms, more
            # than most reads. WAL lets these readers run beside the one writer.
            self.reader = create_async_engine(self.url, echo=echo, pool_size=4, max_overflow=4)
            _sqlite_pragmas(self.writer, immediate=True)
            _sqlite_pragmas(self.reader, immediate=False)
        else:
            self.writer = create_async_engine(
                self.url, echo=echo, pool_size=8, max_overflow=8, pool_pre_ping=True
            )
            self.reader = self.writer

    async def create_schema(self, *more: MetaData) -> None:
        """Create shared/'s tables and a service's own (idempotent)."""
        async with self.writer.begin() as conn:
            for tables in (metadata, *more):
                await conn.run_sync(tables.create_all)

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
            await conn.begin()
            yield conn
        except BaseException:
            await _shielded(_end(conn, commit=False))
            raise
        await _shielded(_end(conn, commit=True))
        self._changed.set()

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

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


async def _end(conn: AsyncConnection, *, commit: bool) -> None:
    try:
        if commit:
            await conn.commit()
        else:
            await conn.rollback()
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


def _sqlite_pragmas(engine: AsyncEngine, *, immediate: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit that returned is on disk; the store is the record of what happened.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
