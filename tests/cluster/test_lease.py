"""The lease itself, on a real PostgreSQL database and a real file: one holder at a time,
the stand-by names the holder, and a holder whose session ends (its process killed, or its
connection cut) loses it at once: its job is stopped and the stand-by takes the lease."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from harness.databases import asyncpg_dsn
from harness.waits import until
from sqlalchemy.engine import make_url

from shared.lease import FileLease, PgLease, hold, lease_for

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def cut(url: str, instance: str) -> None:
    """End the lease session of ``instance`` from the server's side, as when its process is
    killed or the network between them fails."""
    admin = await asyncpg.connect(asyncpg_dsn(make_url(url)))
    try:
        ended = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1",
            f"kapok lease {instance}",
        )
    finally:
        await admin.close()
    assert ended == 1


@pytest.mark.postgres
async def test_one_holder_at_a_time_and_a_cut_session_hands_the_lease_over(
    postgres_url: str,
) -> None:
    url = make_url(postgres_url)
    a, b = PgLease(url, "relay hotline", "a"), PgLease(url, "relay hotline", "b")
    other = PgLease(url, "relay aid", "b")
    try:
        assert await a.try_acquire() and a.held and a.holder == "a"
        assert not await b.try_acquire()
        assert (b.held, b.holder) == (False, "a")  # the stand-by says who holds it
        assert await other.try_acquire()  # another source's relay is another lease

        await cut(postgres_url, "a")
        assert not await a.check() and not a.held
        assert await b.try_acquire() and b.holder == "b"
        assert not await a.try_acquire() and a.holder == "b"
    finally:
        for lease in (a, b, other):
            await lease.release()


@pytest.mark.postgres
async def test_a_holder_that_loses_its_session_stops_its_job_and_waits_again(
    postgres_url: str,
) -> None:
    lease = PgLease(make_url(postgres_url), "reporting fold", "a")
    started: list[int] = []
    stopped = asyncio.Event()

    async def job() -> None:
        started.append(lease.taken)
        try:
            await asyncio.Event().wait()  # forever, until stopped
        finally:
            stopped.set()

    holding = asyncio.create_task(hold(lease, job, poll=0.1, every=0.2))
    try:
        await until("the job runs", lambda: started == [1], 10)
        await cut(postgres_url, "a")
        await asyncio.wait_for(stopped.wait(), 5)  # stopped once the loss was seen
        # The lease was free again: taken again, on a session of its own, the job started anew.
        await until("the job runs again", lambda: started == [1, 2], 5)
        assert lease.held and not holding.done()
    finally:
        holding.cancel()
        await asyncio.gather(holding, return_exceptions=True)
    assert not lease.held  # let go when its holder stops


async def test_on_sqlite_the_lease_is_a_file_lock_beside_the_database(tmp_path: Path) -> None:
    url = make_url(f"sqlite+aiosqlite:///{tmp_path}/hotline.db")
    a, b = lease_for(url, "relay hotline", "a"), lease_for(url, "relay hotline", "b")
    assert isinstance(a, FileLease) and isinstance(b, FileLease)
    assert a.path == tmp_path / "hotline.db.relay-hotline.lease"
    assert await a.try_acquire()
    assert not await b.try_acquire() and b.holder == "a"
    await a.release()  # as the kernel does when a's process ends
    assert await b.try_acquire() and b.holder == "b"
    await b.release()
    assert lease_for(make_url("sqlite+aiosqlite:///:memory:"), "relay hotline", "a") is None
