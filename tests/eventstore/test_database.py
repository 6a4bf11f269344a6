"""SQLite write transactions on the one-trip connection: begun by their first statement,
ended on the driver when only the driver was used, and the same on a SQLite URL with options
(SQLAlchemy's own connection, no driver shortcuts)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from harness import databases
from harness.calls import call
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts import Context
from shared.eventstore import Append, ConcurrencyError, Database, EventStore
from shared.eventstore.database import sqlite_driver
from shared.eventstore.schema import events, log_head


@pytest_asyncio.fixture(loop_scope="session")
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(databases.sqlite_url(tmp_path))
    await database.create_schema()
    yield database
    await database.dispose()


def _file(db: Database) -> str:
    assert db.url.database
    return db.url.database


async def _head(db: Database) -> list[tuple[str, int]]:
    async with db.read() as conn:
        rows = await conn.execute(select(log_head.c.source, log_head.c.position))
        return sorted((str(s), int(p)) for s, p in rows)


def _locked(db: Database) -> bool:
    """Whether another connection is kept from writing right now."""
    other = sqlite3.connect(_file(db), timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as error:
        assert "locked" in str(error)
        return True
    finally:
        other.close()


_INSERT = "INSERT INTO event_log_head (source, position, hash) VALUES (?, ?, ?)"


async def test_a_write_takes_the_lock_with_its_first_statement_and_commits_on_the_driver(
    db: Database,
) -> None:
    async with db.write() as conn:
        assert not _locked(db)  # nothing ran: nothing begun, no trip taken
        driver = sqlite_driver(conn)
        assert driver is not None
        await driver.run(_INSERT, ("a", 1, "0" * 64))
        assert _locked(db)  # BEGIN IMMEDIATE came with the statement
    assert not _locked(db)
    assert await _head(db) == [("a", 1)]


async def test_a_failed_write_on_the_driver_rolls_back_whole(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            driver = sqlite_driver(conn)
            assert driver is not None
            await driver.run(_INSERT, ("a", 1, "0" * 64))
            await driver.run_many(_INSERT, [("b", 2, "0" * 64)], then=(_INSERT, ("c", 3, "x")))
            raise RuntimeError("refused")
    assert not _locked(db)
    assert await _head(db) == []


@pytest.mark.parametrize("sqlalchemy_first", [True, False])
async def test_driver_and_sqlalchemy_statements_share_one_transaction(
    db: Database, sqlalchemy_first: bool
) -> None:
    sqlalchemy = text("INSERT INTO event_log_head (source, position, hash) VALUES ('s', 1, 'h')")

    async def both(conn: AsyncConnection) -> None:
        driver = sqlite_driver(conn)
        assert driver is not None
        if sqlalchemy_first:
            await conn.execute(sqlalchemy)
        await driver.run(_INSERT, ("d", 2, "h"))
        if not sqlalchemy_first:
            await conn.execute(sqlalchemy)

    with pytest.raises(RuntimeError):
        async with db.write() as conn:
            await both(conn)
            raise RuntimeError("refused")
    assert await _head(db) == []
    async with db.write() as conn:
        await both(conn)
    assert await _head(db) == [("d", 2), ("s", 1)]
    assert not _locked(db)


async def test_a_sqlite_url_with_options_appends_through_sqlalchemy(tmp_path: Path) -> None:
    db = Database(databases.sqlite_url(tmp_path) + "?timeout=30")
    try:
        store = EventStore(db, "hotline")
        await store.setup()
        async with db.write() as conn:
            assert sqlite_driver(conn) is None  # SQLAlchemy's own connection
        await store.append_all(
            [Append("call:1", 0, [call(1)]), Append("call:2", 0, [call(2)])], Context()
        )
        await store.append("call:1", 1, [call(3)], Context())
        with pytest.raises(ConcurrencyError):
            await store.append("call:2", 0, [call(4)], Context())
        assert [e.version for e in await store.load("call:1")] == [1, 2]
        assert [r.position for r in await store.read_bytes_from(0, 10)] == [1, 2, 3]
        assert await store.head() == 3
        async with db.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(events)) == 3
    finally:
        await db.dispose()


async def test_the_relay_reads_what_a_group_just_committed_as_the_database_holds_it(
    database_url: str,
) -> None:
    """`EventStore.committed` keeps a gapless tail of what this process's group commits
    wrote; anything else (another writer's events, a resend) is read from the database."""
    db = Database(database_url)
    try:
        store = EventStore(db, "hotline")
        await store.setup()

        async def group(first: int, n: int) -> None:
            appends = [Append(f"call:{i}", 0, [call(i)]) for i in range(first, first + n)]
            async with db.write() as conn:
                log = await store.lock_in(conn)
                rows = await store.add_all_in(conn, log, [(appends, Context())])
                await store.release_in(conn, log)
            store.committed(rows)

        await group(1, 3)  # positions 1-3
        await store.append("call:other", 0, [call(99)], Context())  # 4, not in the tail
        await group(4, 2)  # 5-6: the tail starts again at 5

        stored = [
            (r.position, r.event_id, r.type, r.body.encode()) for r in await store.read_from(0, 100)
        ]
        assert [p for p, *_ in stored] == [1, 2, 3, 4, 5, 6]
        for after in (4, 5, 0, 2, 6):  # from memory first, then resends from the database
            assert [tuple(r) for r in await store.read_bytes_from(after, 100, recent=True)] == (
                stored[after:]
            )
        assert [tuple(r) for r in await store.read_bytes_from(4, 1, recent=True)] == stored[4:5]

        # Any other commit of this process since (here an append the tail never saw) means
        # the tail may not reach the head: the database is read.
        await group(7, 2)  # 7-8, in the tail
        await store.append("call:another", 0, [call(98)], Context())  # 9
        assert [r.position for r in await store.read_bytes_from(6, 100, recent=True)] == [7, 8, 9]

        # Another process's append comes after what this one committed: a recent read ends
        # at this process's last commit and the next read brings it; any other reads it.
        await group(10, 2)  # 10-11, in the tail
        other = Database(database_url)
        try:
            await EventStore(other, "hotline").append("call:x", 0, [call(97)], Context())  # 12
        finally:
            await other.dispose()
        assert [r.position for r in await store.read_bytes_from(9, 100)] == [10, 11, 12]
        assert [r.position for r in await store.read_bytes_from(9, 100, recent=True)] == [10, 11]
        assert [r.position for r in await store.read_bytes_from(11, 100, recent=True)] == [12]
    finally:
        await db.dispose()


@pytest.mark.parametrize(("durable", "synchronous"), [(True, 2), (False, 1)])  # FULL, NORMAL
async def test_a_store_is_durable_and_a_read_model_may_choose_not_to_be(
    tmp_path: Path, durable: bool, synchronous: int
) -> None:
    database = Database(databases.sqlite_url(tmp_path), durable=durable)
    try:
        async with database.write() as conn:
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == synchronous
        async with database.read() as conn:
            assert (await conn.exec_driver_sql("PRAGMA synchronous")).scalar() == synchronous
    finally:
        await database.dispose()
