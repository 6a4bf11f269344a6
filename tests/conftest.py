"""Fixtures on real parts (see tests/harness/): no mock of NATS or of the database.

- ``nats_server`` / ``nats_url`` (session): one real nats-server with JetStream.
- ``settings`` (function): Settings on that server with a subject root and stream prefix
  of its own, and ``data_dir`` = the test's tmp_path.
- ``database_url`` (function, parametrized ``sqlite`` / ``postgres``): an empty database.
- ``postgres_url`` (function): an empty PostgreSQL database only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from harness import databases
from harness import nats as harness_nats

from shared.settings import Settings

_session_server: harness_nats.NatsServer | None = None


def pytest_report_header(config: pytest.Config) -> list[str]:
    try:
        mode, reason = harness_nats.decide()
    except Exception as exc:
        return [f"kapok nats: cannot decide: {exc}"]
    if mode == "docker":
        image = os.environ.get("KAPOK_TEST_NATS_IMAGE") or (
            f"{harness_nats.OFFICIAL_IMAGE}, else a local FROM scratch build"
        )
        return [f"kapok nats: testcontainers ({reason}; image {image})"]
    return [f"kapok nats: subprocess ({reason})"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _session_server is not None:
        terminalreporter.write_line(f"kapok nats: {_session_server.description}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # `-m "not postgres"` must also deselect tests that take postgres_url.
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness_nats.NatsServer]:
    global _session_server
    server = harness_nats.start_session_server(tmp_path_factory.mktemp("nats"))
    _session_server = server
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def nats_url(nats_server: harness_nats.NatsServer) -> str:
    return nats_server.url


@pytest.fixture
def settings(nats_url: str, tmp_path: Path) -> Settings:
    root = f"t{uuid.uuid4().hex[:8]}"
    return Settings(
        nats_url=nats_url,
        data_dir=tmp_path,
        subject_root=root,
        stream_prefix=f"{root.upper()}_",
        # Explicit so a developer's KAPOK_* environment cannot leak into tests.
        database_url=None,
        stream_replicas=1,
    )


@pytest_asyncio.fixture(
    loop_scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield databases.sqlite_url(tmp_path)
        return
    async with databases.fresh_database() as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def postgres_url() -> AsyncIterator[str]:
    async with databases.fresh_database() as url:
        yield url
