"""Group commit: the decisions of concurrent requests share one write transaction.

Every commit ends in a durable flush (SQLite ``synchronous=FULL``, PostgreSQL's WAL fsync),
so one transaction per request caps a service at the disk's flush rate (about a hundred a
second here) however light each request is. Instead, a request queues its decision; one task
at a time commits everything queued meanwhile, together, and each request gets the outcome
committing it alone would have given:

- the group takes the store's lock, then reads the group's Idempotency-Keys at once: a key
  already answered gets its first response;
- the decisions run in order (guard, append, key), each seeing the writes of those before
  it, first all in the one transaction without savepoints (a savepoint costs round trips,
  about a third of a single request's time when measured), the log's head read and written
  once for the group;
- an `EventCheck` that passed stays passed for the next groups while the log's head is
  where this process's last group left it (nobody else appended anything since) and no
  event of its types was appended: a closed-points check per call's group was a trip to the
  database thread of four;
- if any decision fails, that transaction rolls back and the group runs again with a
  SAVEPOINT per decision: a decision that fails (a stale version, a guard's refusal, a key
  another decision of the group just took) rolls back only its own writes and only its
  request hears the error; the loop in `CommandService` then decides again or answers with
  the refusal;
- nobody hears "done" before the group's commit returned; if the commit fails, everyone in
  the group hears the error and nothing of the group was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.envelope import Context
from shared.eventstore import Append, EventStore
from shared.eventstore.schema import log_head
from shared.eventstore.store import OpenLog, Row
from shared.service import idempotency
from shared.service.idempotency import Stored
from shared.service.replies import Refused, Reply

Guard = Callable[[AsyncConnection], Awaitable[None]]
"""Checks or writes spanning aggregates, run in the commit's transaction (see Decision)."""


@dataclass(frozen=True, slots=True)
class EventCheck:
    """A guard that only reads the store's events of ``types`` and writes nothing, so a group
    knows what can change its answer: the same check (an equal ``key``) passes again until an
    event of those types is appended, and the events decided before it need to be written
    before it runs only if some are of those types."""

    types: frozenset[str]
    key: Hashable
    check: Guard

    async def __call__(self, conn: AsyncConnection) -> None:
        await self.check(conn)


# Enough to absorb every concurrent client; bounded so a group's transaction stays short.
MAX_EVENTS_PER_GROUP = 10_000


@dataclass(slots=True)
class _Pending:
    appends: list[Append]
    in_transaction: Guard | None
    ctx: Context
    key: str | None
    fingerprint: str
    reply: Reply
    future: asyncio.Future[Reply] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def events(self) -> int:
        return sum(len(a.events) for a in self.appends)


class GroupCommit:
    def __init__(self, store: EventStore, keys: Table) -> None:
        self.store = store
        self.keys = keys
        self._queue: list[_Pending] = []
        self._committer: asyncio.Task[None] | None = None
        # EventChecks (by key, with their types) that pass on the store as the last group
        # committed it, and the head (position, hash) that group left.
        self._checked: dict[Hashable, frozenset[str]] = {}
        self._checked_at: tuple[int, str] | None = None

    async def commit(
        self,
        appends: list[Append],
        in_transaction: Guard | None,
        reply: Reply,
        ctx: Context,
        key: str | None,
        fingerprint: str,
    ) -> Reply:
        """The reply once committed, or the key's first reply. Raises what refused this
        decision alone (ConcurrencyError, IntegrityError, a DomainError, Refused) or what
        failed the whole group."""
        mine = _Pending(appends, in_transaction, ctx, key, fingerprint, reply)
        self._queue.append(mine)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await mine.future

    async def _commit_queued(self) -> None:
        # No await between the emptiness check and returning, so a decision queued after
        # the check always finds this task done and starts the next one.
        while self._queue:
            await self._commit_group(self._take())

    def _take(self) -> list[_Pending]:
        group: list[_Pending] = []
        events = 0
        while self._queue and (not group or events + self._queue[0].events <= MAX_EVENTS_PER_GROUP):
            pending = self._queue.pop(0)
            events += pending.events
            group.append(pending)
        return group

    async def _commit_group(self, group: list[_Pending]) -> None:
        try:
            try:
                done = await self._try_together(group)
            except Exception:  # some decision failed: nothing was stored; decide one by one
                if len(group) == 1:  # what `_try_each` would do for it alone
                    raise
                done = await self._try_each(group)
        except Exception as error:  # the commit failed: nothing of the group was stored
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        except BaseException:
            for pending in group:
                if not pending.future.done():
                    pending.future.set_exception(RuntimeError("the commit was cancelled"))
            raise
        for pending, reply in done:
            pending.future.set_result(reply)

    async def _lock(self, conn: AsyncConnection, group: list[_Pending]) -> dict[str, Stored]:
        # The lock every append takes, taken first: the key check and the guards read what
        # no other writer of this source can change before the commit.
        await conn.execute(
            select(log_head.c.position)
            .where(log_head.c.source == self.store.source)
            .with_for_update()
        )
        keys = sorted({p.key for p in group if p.key is not None})
        return await idempotency.stored_replies(conn, self.keys, keys)

    async def _try_together(self, group: list[_Pending]) -> list[tuple[_Pending, Reply]]:
        """The whole group in one transaction, no savepoints, the log's head taken and
        written once: what almost every group is. Raises if any decision fails (a stale
        version, a guard's refusal, a key taken twice): the transaction rolled back, and
        `_try_each` decides again with a savepoint per decision.

        The decisions run in the same order as there, and each guard sees the writes of the
        decisions before it: events are inserted together, once no guard is left that could
        read them (an `EventCheck` reads only its types; any other guard, everything)."""
        done: list[tuple[_Pending, Reply]] = []
        checked, self._checked_at = self._checked_at, None  # trusted again once committed
        async with self.store.db.write() as conn:
            log = await self.store.lock_in(conn)
            keys = sorted({p.key for p in group if p.key is not None})
            answered = await idempotency.stored_replies(conn, self.keys, keys)
            replies: list[dict[str, object]] = []
            unwritten = _Unwritten(self.store, conn, log)
            # EventChecks passed, by key: those of the last group still hold if nobody has
            # appended since (every append moves the head).
            passed = dict(self._checked) if checked == (log.position, log.hash) else {}
            for pending in group:
                if _settled(pending, answered, done):
                    continue
                guard = pending.in_transaction
                if isinstance(guard, EventCheck):
                    if guard.types & unwritten.types:
                        await unwritten.write()
                    if guard.key not in passed:
                        await guard(conn)
                        passed[guard.key] = guard.types
                elif guard is not None:
                    await unwritten.write()
                    await guard(conn)
                    passed.clear()  # it may have written what a check reads
                types = unwritten.add(pending.appends, pending.ctx)
                if types and passed:
                    passed = {k: t for k, t in passed.items() if not t & types}
                if pending.key is not None:
                    replies.append(idempotency.row(pending.key, pending.fingerprint, pending.reply))
                done.append((pending, pending.reply))
            await unwritten.write()
            await self.store.release_in(conn, log)
            # A key twice in the group fails this insert, and `_try_each` sorts it out.
            await idempotency.save_replies(conn, self.keys, replies)
        # Committed: what passed holds on the store as this group left it, and the relay may
        # take the events from memory.
        self._checked, self._checked_at = passed, (log.position, log.hash)
        self.store.committed(unwritten.written)
        return done

    async def _try_each(self, group: list[_Pending]) -> list[tuple[_Pending, Reply]]:
        """Each decision in a SAVEPOINT of its own: one that fails rolls back only its writes
        and only its request hears the error."""
        done: list[tuple[_Pending, Reply]] = []
        async with self.store.db.write() as conn:
            answered = await self._lock(conn, group)
            # A decision alone needs no savepoint: if it fails, the whole transaction
            # rolls back, and a savepoint is a round trip to the database.
            alone = len(group) == 1
            for pending in group:
                if _settled(pending, answered, done):
                    continue
                try:
                    async with contextlib.nullcontext() if alone else conn.begin_nested():
                        if pending.in_transaction is not None:
                            await pending.in_transaction(conn)
                        await self.store.append_in(conn, pending.appends, pending.ctx)
                        if pending.key is not None:
                            await idempotency.save_reply(
                                conn, self.keys, pending.key, pending.fingerprint, pending.reply
                            )
                except Exception as error:  # this decision's savepoint rolled back
                    if alone:
                        raise
                    pending.future.set_exception(error)
                    continue
                done.append((pending, pending.reply))
        return done


def _settled(
    pending: _Pending, answered: dict[str, Stored], done: list[tuple[_Pending, Reply]]
) -> bool:
    """Whether ``pending`` needs no writing: refused by its key in an attempt before, or its
    key already answered (its first reply goes into ``done``)."""
    if pending.future.done():
        return True
    if pending.key is not None and pending.key in answered:
        if (first := _replayed(pending, answered[pending.key])) is not None:
            done.append((pending, first))
        return True
    return False


def _replayed(pending: _Pending, stored: Stored) -> Reply | None:
    """The key's first reply, or None once the request heard that its key was first used
    for another request."""
    assert pending.key is not None
    try:
        return idempotency.replay(pending.key, pending.fingerprint, stored)
    except Refused as refused:
        pending.future.set_exception(refused)
        return None


class _Unwritten:
    """Decided events of a group not inserted yet: inserted together by `write`."""

    def __init__(self, store: EventStore, conn: AsyncConnection, log: OpenLog) -> None:
        self.store, self.conn, self.log = store, conn, log
        self.decisions: list[tuple[list[Append], Context]] = []
        self.types: set[str] = set()
        self.written: list[Row] = []

    def add(self, appends: list[Append], ctx: Context) -> set[str]:
        """Keep a decision's appends; return their event types."""
        self.decisions.append((appends, ctx))
        types = {type(new.data).type_name() for a in appends for new in a.events}
        self.types |= types
        return types

    async def write(self) -> None:
        if self.decisions:
            decisions, self.decisions, self.types = self.decisions, [], set()
            self.written += await self.store.add_all_in(self.conn, self.log, decisions)
