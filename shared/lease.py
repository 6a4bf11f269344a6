"""A lease: which one of several instances of a service does a job that only one may do at a
time (publish a source's outbox, fold reporting's counters), the others standing by.

Why a lock of the database the job works on, not a NATS KV key with a TTL:

- PostgreSQL (`PgLease`): a session-level advisory lock held on a connection of its own.
  PostgreSQL releases it the moment that connection ends, and a process killed with -9 ends
  it at once (the kernel closes its socket; the backend reads end-of-file and exits), so a
  stand-by polling every `POLL_S` takes over within about that, where a KV key would be
  waited out for its whole TTL. A machine that vanishes without closing its socket is found
  out by TCP keepalives set on the lease's connection (`KEEPALIVE`, ~11 s). The lease also
  lives where the job's state does: losing the database loses the lease and the job alike,
  whereas a KV lease could be held by an instance that cannot reach its database.
- SQLite (`FileLease`): an exclusive `flock` on a file beside the database, which the kernel
  releases when the holder's process ends however it ends. SQLite serves instances on one
  machine only, and so does this.

A lease is no fence by itself: a holder cut off from PostgreSQL keeps running until its next
`check` (every `CHECK_S`, at most `CHECK_TIMEOUT_S` each) while a stand-by may already have
taken over. The jobs are fenced where they write: the relay's publishes expect the stream's
last sequence and message id (a stale holder's are refused or acknowledged as duplicates,
never stored twice), and a consumer's checkpoint write expects the position it read
(`shared.consumer.CheckpointMoved`).

`hold` runs a job while its lease is held, and stops it when the lease is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import asyncpg
from sqlalchemy.engine import URL

log = logging.getLogger("kapok.lease")

POLL_S = 0.5  # how often a stand-by tries to take the lease
CHECK_S = 1.0  # how often the holder checks it still holds it
CHECK_TIMEOUT_S = 2.0  # a check not answered within this: the lease is taken as lost
CONNECT_TIMEOUT_S = 5.0
# The lease's connection tells PostgreSQL to probe an idle client after 5 s, every 2 s, and
# to drop it after 3 unanswered probes: a holder's machine gone without a word frees the
# lease in about 11 s instead of the kernel's default two hours.
KEEPALIVE = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}
_APP_PREFIX = "kapok lease "
_HELD = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND pid = pg_backend_pid() AND classid = $1 AND objid = $2 AND objsubid = 2)"
)
# Every Kapok advisory lock's first key: keeps them apart from other users of the database.
_KAPOK_KEY = int.from_bytes(hashlib.blake2b(b"kapok", digest_size=4).digest()) & 0x7FFFFFFF


class Lease(Protocol):
    name: str  # what it guards: "relay hotline", "reporting fold"
    instance: str  # this instance's name (`Settings.instance`)
    held: bool
    holder: str | None  # who holds it, as last seen (this instance while held); None: unknown
    since: float | None  # wall-clock time since when this instance holds it
    taken: int  # how many times this instance took it
    error: str | None  # why the last try or check could not tell (None: it could)

    async def try_acquire(self) -> bool:
        """Take it if no one holds it; True if this instance holds it now."""

    async def check(self) -> bool:
        """Whether this instance still holds it (False: lost, and let go)."""

    async def release(self) -> None:
        """Let it go (nothing if not held)."""


def lease_for(url: URL, name: str, instance: str) -> Lease | None:
    """The lease named ``name`` in the database at ``url``; None for an in-memory SQLite
    database (one process only, nothing to share)."""
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        slug = "".join(c if c.isalnum() else "-" for c in name)
        return FileLease(Path(f"{database}.{slug}.lease"), name, instance)
    return PgLease(url, name, instance)


class PgLease:
    """A PostgreSQL session-level advisory lock on a connection of its own (see the module's
    doc). The connection's application_name carries the instance's name, so a stand-by can
    say who holds the lease (pg_locks joined with pg_stat_activity)."""

    def __init__(self, url: URL, name: str, instance: str) -> None:
        self.name, self.instance = name, instance
        self.held, self.holder, self.since, self.taken = False, None, None, 0
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest())
        self._key &= 0x7FFFFFFF
        self._conn: asyncpg.Connection | None = None
        self.error: str | None = None  # why the last attempt could not ask the database

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(
                self._dsn,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={
                    "application_name": (_APP_PREFIX + self.instance)[:63],
                    **KEEPALIVE,
                },
            )
        return self._conn

    async def try_acquire(self) -> bool:
        if self.held:
            return await self.check()
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S + CONNECT_TIMEOUT_S):
                conn = await self._connection()
                lock = "SELECT pg_try_advisory_lock($1, $2)"
                got = bool(await conn.fetchval(lock, _KAPOK_KEY, self._key))
                self.holder = self.instance if got else await self._holder(conn)
        except Exception as error:  # whatever it is, the lease is not known to be held
            self.error = f"{type(error).__name__}: {error}"
            self.holder = None
            await self._drop()
            return False
        self.error = None
        if got:
            self._took()
        return got

    async def _holder(self, conn: asyncpg.Connection) -> str | None:
        name = await conn.fetchval(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 "
            "AND l.objsubid = 2 AND l.database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            _KAPOK_KEY,
            self._key,
        )
        return name.removeprefix(_APP_PREFIX) if name else None

    async def check(self) -> bool:
        if not self.held:
            return False
        conn = self._conn
        try:
            # On the session that took the lock, never a new one (a session lock ends with
            # its session), and asking PostgreSQL whether this session holds it still.
            if conn is None or conn.is_closed():
                raise ConnectionError("the lease's session ended")
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                if await conn.fetchval(_HELD, _KAPOK_KEY, self._key):
                    self.error = None
                    return True
            raise ConnectionError("the lock is no longer held by this session")
        except Exception as error:  # whatever it is, the lease is not known to be held
            self.error = f"{type(error).__name__}: {error}"
        self._lost()
        await self._drop()
        return False

    async def release(self) -> None:
        if self.held:
            self.held, self.since, self.holder = False, None, None
            # Closing the session releases its locks (and an unlock would need one more trip).
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                async with asyncio.timeout(1.0):
                    await conn.close()
            except Exception:  # a session in an unknown state: cut it
                conn.terminate()

    def _took(self) -> None:
        self.held, self.since, self.holder = True, time.time(), self.instance
        self.taken += 1

    def _lost(self) -> None:
        if self.held:
            log.warning("lease %s: lost by %s (%s)", self.name, self.instance, self.error)
        self.held, self.since, self.holder = False, None, None


class FileLease:
    """An exclusive `flock` on ``path`` (see the module's doc); the holder writes its name in
    the file so that a stand-by can say who holds it."""

    def __init__(self, path: Path, name: str, instance: str) -> None:
        self.name, self.instance, self.path = name, instance, path
        self.held, self.holder, self.since, self.taken = False, None, None, 0
        self._fd: int | None = None
        self.error: str | None = None

    async def try_acquire(self) -> bool:
        if self.held:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            self.error = f"{type(error).__name__}: {error}"
            return False
        self.error = None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            with contextlib.suppress(OSError):
                self.holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or None
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, self.instance.encode(), 0)
        self._fd, self.held, self.since, self.holder = fd, True, time.time(), self.instance
        self.taken += 1
        return True

    async def check(self) -> bool:
        return self.held  # the kernel keeps a flock as long as its descriptor is open

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        self.held, self.since, self.holder = False, None, None
        if fd is not None:
            os.close(fd)  # closing the descriptor releases the flock


async def hold(
    lease: Lease,
    job: Callable[[], Awaitable[None]],
    stop: Callable[[asyncio.Task[None]], Awaitable[None]] | None = None,
    *,
    poll: float = POLL_S,
    every: float = CHECK_S,
) -> None:
    """Wait for ``lease``, run ``job`` while it is held, and stop the job (``stop``, else
    cancel it) as soon as a check finds the lease lost; then wait for the lease again. Ends
    (letting the lease go) when the job returns by itself, or raises what it raised.
    Cancelled: stops the job and lets the lease go."""
    try:
        while True:
            waited = time.monotonic()
            while not await lease.try_acquire():  # noqa: ASYNC110 (polling another process)
                await asyncio.sleep(poll)
            log.info(
                "lease %s: taken by %s after %.1f s standing by",
                lease.name,
                lease.instance,
                time.monotonic() - waited,
            )
            task: asyncio.Task[None] = asyncio.ensure_future(job())  # type: ignore[arg-type]
            lost = False
            try:
                while not task.done():
                    await asyncio.wait({task}, timeout=every)
                    if not task.done() and not await lease.check():
                        lost = True
                        break
            finally:
                if not task.done():
                    await (stop or _cancel)(task)
                await lease.release()
            if not lost:
                task.result()  # the job's own end: its error raised here, or hold ends
                return
    finally:
        await lease.release()  # a stand-by's connection too


async def _cancel(task: asyncio.Task[None]) -> None:
    # Until it has ended: on Python 3.11 a cancel landing as an inner `wait_for` ends can be
    # swallowed (CPython gh-86296).
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1.0)
