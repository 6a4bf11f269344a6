"""Databases for tests: a SQLite file, or a fresh PostgreSQL database per test.

Environment:
  KAPOK_TEST_POSTGRES_URL  the server (and the database to connect to for CREATE
                           DATABASE); default postgresql+asyncpg://postgres@127.0.0.1:5432/test
  CI                       when true, an unreachable PostgreSQL fails tests instead of
                           skipping them: CI must not go green by testing less.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import NoReturn

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url

POSTGRES_ENV = "KAPOK_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
DATABASE_PREFIX = "kapok_t_"
# Stored as the database's comment so a later session can drop what a killed one left.
_OWNER_TAG = "kapok-harness"

_checked: str | None = None  # "" = reachable; otherwise why not (checked once a session)


def server_url() -> URL:
    return make_url(os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL)


def asyncpg_dsn(url: URL) -> str:
    """asyncpg takes a libpq-style URL without SQLAlchemy's ``+driver``."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sqlite_url(directory: os.PathLike[str] | str) -> str:
    return f"sqlite+aiosqlite:///{os.fspath(directory)}/x.db"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    where = server_url().render_as_string(hide_password=True)
    if in_ci():
        pytest.fail(f"PostgreSQL at {where} is required in CI (CI={os.environ['CI']}): {reason}")
    pytest.skip(f"PostgreSQL at {where} unreachable ({reason}); start it or set {POSTGRES_ENV}")


async def _connect() -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(server_url()), timeout=5)


async def check_postgres() -> str:
    """'' if the server answers, else the reason; the first call also drops databases left
    behind by sessions that no longer run."""
    global _checked
    if _checked is None:
        try:
            conn = await _connect()
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            _checked = f"{type(exc).__name__}: {exc}"
        else:
            try:
                await _drop_orphans(conn)
            finally:
                await conn.close()
            _checked = ""
    return _checked


def _owner_tag() -> str:
    return f"{_OWNER_TAG} {socket.gethostname()} {os.getpid()}"


async def _drop_orphans(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT datname, shobj_description(oid, 'pg_database') AS owner FROM pg_database"
        " WHERE datname LIKE $1",
        DATABASE_PREFIX.replace("_", r"\_") + "%",
    )
    host = socket.gethostname()
    for row in rows:
        tag, _, rest = (row["owner"] or "").partition(" ")
        owner_host, _, pid = rest.partition(" ")
        if tag != _OWNER_TAG or owner_host != host or _alive(pid):
            continue
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute(f'DROP DATABASE IF EXISTS "{row["datname"]}" WITH (FORCE)')


def _alive(pid: str) -> bool:
    if not pid.isdigit() or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new empty database on the test server, as an SQLAlchemy asyncpg URL; dropped after.

    Skips (locally) or fails (CI) the test when the server does not answer.
    """
    reason = await check_postgres()
    if reason:
        unavailable(reason)
    name = f"{DATABASE_PREFIX}{uuid.uuid4().hex[:12]}"
    conn = await _connect()
    try:
        # template0: nobody is ever connected to it, so concurrent sessions cannot make
        # CREATE DATABASE fail with "source database is being accessed by other users".
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        await conn.execute(f"COMMENT ON DATABASE \"{name}\" IS '{_owner_tag()}'")
    finally:
        await conn.close()
    try:
        url = server_url().set(drivername="postgresql+asyncpg", database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        conn = await _connect()
        try:
            # FORCE: a test that leaked a connection (or a pool not yet disposed) must
            # not leave the database behind.
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def for_kapok_up(kind: str, services: Iterable[str]) -> AsyncIterator[str | None]:
    """What a `kapok up` story runs on: SQLite files (None), or a fresh server database whose
    URL goes to `--postgres`, under which each service makes ``<name>_<service>``; those are
    dropped after too."""
    if kind == "sqlite":
        yield None
        return
    async with fresh_database() as url:
        try:
            yield url
        finally:
            base = make_url(url)
            conn = await asyncpg.connect(asyncpg_dsn(base))
            try:
                for name in services:
                    await conn.execute(
                        f'DROP DATABASE IF EXISTS "{base.database}_{name}" WITH (FORCE)'
                    )
            finally:
                await conn.close()
