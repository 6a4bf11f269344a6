"""The test harness itself: the session's NATS server and the database fixtures are real."""

from __future__ import annotations

import os
import re

import asyncpg
import nats
import pytest
from harness import databases
from harness.nats import NatsServer, docker_engine
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from shared.bus.embedded import parse_version
from shared.settings import MIN_NATS_VERSION, Settings


async def test_session_server_is_recent_with_jetstream(nats_url: str) -> None:
    nc = await nats.connect(nats_url, allow_reconnect=False)
    try:
        version = nc.connected_server_version
        assert (version.major, version.minor, version.patch) >= MIN_NATS_VERSION
        account = await nc.jetstream().account_info()
        assert account.limits is not None
    finally:
        await nc.close()


def test_the_expected_path_was_taken(nats_server: NatsServer) -> None:
    forced = os.environ.get("KAPOK_TEST_NATS", "auto").strip().lower()
    if forced in ("docker", "subprocess"):
        expected = forced
    else:
        expected = "docker" if docker_engine() is not None else "subprocess"
    assert nats_server.mode == expected, nats_server.description
    assert parse_version(nats_server.version) >= MIN_NATS_VERSION
    if expected == "docker":
        assert nats_server.description.startswith("testcontainers (image ")
        client = docker_engine()
        assert client is not None
        mine = client.containers.list(filters={"label": f"org.kapok.harness.pid={os.getpid()}"})
        client.close()
        assert [c.image.tags for c in mine] and nats_server.image in mine[0].image.tags
    else:
        assert nats_server.url.startswith("nats://127.0.0.1:")


def test_settings_are_isolated_per_test(settings: Settings, nats_url: str, tmp_path) -> None:
    assert settings.nats_url == nats_url
    assert settings.data_dir == tmp_path
    assert re.fullmatch(r"t[0-9a-f]{8}", settings.subject_root)
    assert settings.stream_prefix == settings.subject_root.upper() + "_"


async def test_database_url_is_an_empty_working_database(database_url: str) -> None:
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            tables = await conn.run_sync(
                lambda sync: sync.dialect.get_table_names(sync)  # type: ignore[arg-type]
            )
            assert tables == []
            await conn.execute(text("CREATE TABLE probe (n INTEGER PRIMARY KEY)"))
            await conn.execute(text("INSERT INTO probe VALUES (1)"))
            assert (await conn.execute(text("SELECT count(*) FROM probe"))).scalar() == 1
    finally:
        await engine.dispose()
    if database_url.startswith("postgresql"):
        assert make_url(database_url).database.startswith(databases.DATABASE_PREFIX)


@pytest.mark.postgres
async def test_fresh_postgres_database_is_dropped_afterwards() -> None:
    async with databases.fresh_database() as url:
        name = make_url(url).database
        conn = await asyncpg.connect(databases.asyncpg_dsn(make_url(url)))
        await conn.close()  # left for FORCE to clean up would also work; be tidy
    admin = await asyncpg.connect(databases.asyncpg_dsn(databases.server_url()))
    try:
        left = await admin.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name)
    finally:
        await admin.close()
    assert left == 0


async def test_postgres_url_is_postgres(postgres_url: str) -> None:
    assert make_url(postgres_url).drivername == "postgresql+asyncpg"
