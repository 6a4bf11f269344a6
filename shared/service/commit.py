"""Group commit: the decisions of concurrent requests share one write transaction.

Every commit ends in a durable flush (SQLite ``synchronous=FULL``, PostgreSQL's WAL fsync),
so one transaction per request caps a service at the disk's flush rate (about a hundred a
second here) however light each request is. Instead, a request queues its decision; one task
at a time commits everything queued meanwhile, together, and each request gets the outcome
committing it alone would have given:

- the group takes the store's lock, then reads the group's Idempotency-Keys at once: a key
  already answered gets its first response;
- each other decision runs in a SAVEPOINT of its own (guard, append, key): if it fails (a
  stale version, a guard's refusal, a key another decision of the group just took), only its
  own writes roll back and only its request hears the error; the loop in `CommandService`
  then decides again or answers with the refusal;
- nobody hears "done" before the group's commit returned; if the commit fails, everyone in
  the group hears the error and nothing of the group was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.envelope import Context
from shared.eventstore import Append, EventStore
from shared.eventstore.schema import log_head
from shared.service import idempotency
from shared.service.replies import Refused, Reply

Guard = Callable[[AsyncConnection], Awaitable[None]]
"""Checks or writes spanning aggregates, run in the commit's transaction (see Decision)."""

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
        done: list[tuple[_Pending, Reply]] = []
        try:
            async with self.store.db.write() as conn:
                # The lock every append takes, taken first: the key check and the guards
                # read what no other writer of this source can change before the commit.
                await conn.execute(
                    select(log_head.c.position)
                    .where(log_head.c.source == self.store.source)
                    .with_for_update()
                )
                keys = sorted({p.key for p in group if p.key is not None})
                answered = await idempotency.stored_replies(conn, self.keys, keys)
                # A decision alone needs no savepoint: if it fails, the whole transaction
                # rolls back, and a savepoint is a round trip to the database.
                alone = len(group) == 1
                for pending in group:
                    if pending.key is not None and pending.key in answered:
                        try:
                            first = idempotency.replay(
                                pending.key, pending.fingerprint, answered[pending.key]
                            )
                        except Refused as refused:
                            pending.future.set_exception(refused)
                            continue
                        done.append((pending, first))
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
