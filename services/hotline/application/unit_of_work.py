"""Group commit: the decisions of concurrent requests share one write transaction.

Every commit ends in a durable flush (SQLite ``synchronous=FULL``, PostgreSQL's WAL fsync),
so one transaction per request caps the service at the disk's flush rate (about a hundred a
second here) however light each request is. Instead, a request queues its decision; whoever
commits takes every decision queued meanwhile and commits them together (one task at a time,
started when decisions wait and ending when none do), and each request gets its own outcome:
committed, refused by a guard, or asked to decide again.

Per request the outcome is exactly what committing it alone would give. In one transaction,
under the store's head-row lock (`tables.lock_log`), the group:
1. reads the guards for all decisions at once: Idempotency-Keys already answered, points
   closed, workers with an open shift;
2. refuses, per decision, what the guards refuse; defers (the caller decides again, after this
   commit) a decision that collides with an earlier one of the same group: same key, same
   aggregate or same worker;
3. appends each remaining decision with its own context (actor, correlation); a stale version
   refuses only that decision (nothing of it was written: the store checks before writing);
4. writes the open-shift rows and the keys' responses, and commits.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import orjson

from services.hotline.adapters import tables
from services.hotline.application.handlers import Decision
from shared.contracts.envelope import Context
from shared.eventstore import Append, ConcurrencyError, EventStore
from shared.service.errors import RuleBroken

# Enough to absorb every concurrent client; bounded so a group's transaction stays short.
MAX_EVENTS_PER_GROUP = 10_000


class Deferred(Exception):
    """The decision collided with an earlier one in its group: decide again on fresh state."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What a transport sends back: an HTTP-like status and a JSON body (bytes, so a stored
    reply is returned exactly as it was first sent)."""

    status: int
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


@dataclass(slots=True)
class Pending:
    decision: Decision
    ctx: Context
    key: str | None
    fingerprint: str
    reply: Reply
    future: asyncio.Future[Reply | tuple[str, int, str]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    @property
    def events(self) -> int:
        return sum(len(a.pending) for a in self.decision.changed)


class GroupCommit:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._queue: list[Pending] = []
        self._committer: asyncio.Task[None] | None = None

    async def commit(
        self, decision: Decision, ctx: Context, key: str | None, fingerprint: str
    ) -> Reply | tuple[str, int, str]:
        """The reply if committed, or the (fingerprint, status, body) stored for ``key`` if
        the key was already answered. Raises the decision's refusal, `ConcurrencyError` or
        `Deferred`."""
        reply = Reply(decision.status, orjson.dumps(decision.body))
        mine = Pending(decision, ctx, key, fingerprint, reply)
        self._queue.append(mine)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        return await mine.future

    async def _commit_queued(self) -> None:
        # No await between the emptiness check and returning, so a decision queued after
        # the check always finds this task done and starts the next one.
        while self._queue:
            await self._commit_group(self._take())

    def _take(self) -> list[Pending]:
        group: list[Pending] = []
        events = 0
        while self._queue and (not group or events + self._queue[0].events <= MAX_EVENTS_PER_GROUP):
            pending = self._queue.pop(0)
            events += pending.events
            group.append(pending)
        return group

    async def _commit_group(self, group: list[Pending]) -> None:
        # Outcomes are handed out only once the transaction has ended: a deferred request
        # must decide again on the state this group committed, not on what was there before.
        outcomes: list[tuple[Pending, Reply | tuple[str, int, str] | Exception]] = []
        try:
            async with self.store.db.write() as conn:
                await tables.lock_log(conn, self.store.source)
                keys = sorted({p.key for p in group if p.key is not None})
                answered = await tables.stored_replies(conn, keys) if keys else {}
                points = sorted({pt for p in group for pt in p.decision.open_points})
                closed = set(await tables.closed_points_among(conn, points)) if points else set()
                workers = sorted({w for p in group for w in p.decision.claims})
                on_duty = await tables.open_shifts_of(conn, workers) if workers else {}

                seen_keys: set[str] = set()
                seen_streams: set[str] = set()
                seen_workers: set[str] = set()
                released: list[str] = []
                claimed: dict[str, str] = {}
                replies: list[dict[str, object]] = []
                for pending in group:
                    decision = pending.decision
                    streams = {a.id for a in decision.changed}
                    if pending.key in answered:
                        outcomes.append((pending, answered[pending.key]))
                        continue
                    if (
                        (pending.key is not None and pending.key in seen_keys)
                        or streams & seen_streams
                        or seen_workers.intersection(decision.claims)
                    ):
                        outcomes.append((pending, Deferred()))
                        continue
                    refusal = _guard(decision, closed, on_duty)
                    if refusal is not None:
                        outcomes.append((pending, refusal))
                        continue
                    appends = [Append(a.id, a.version, a.pending) for a in decision.changed]
                    try:
                        await self.store.append_in(conn, appends, pending.ctx)
                    except ConcurrencyError as error:
                        outcomes.append((pending, error))
                        continue
                    if pending.key is not None:
                        seen_keys.add(pending.key)
                        replies.append(
                            {
                                "key": pending.key,
                                "fingerprint": pending.fingerprint,
                                "status": pending.reply.status,
                                "body": pending.reply.body.decode(),
                            }
                        )
                    seen_streams |= streams
                    seen_workers.update(decision.claims)
                    released.extend(decision.releases)
                    claimed.update(decision.claims)
                    outcomes.append((pending, pending.reply))
                if released:
                    await tables.release_shifts(conn, released)
                await tables.claim_shifts(conn, claimed)
                await tables.save_replies(conn, replies)
        except Exception as error:  # the database failed: nothing of the group was stored
            for pending in group:
                _settle(pending, error)
            return
        except BaseException:
            for pending in group:
                _settle(pending, RuntimeError("the commit was cancelled"))
            raise
        for pending, outcome in outcomes:
            _settle(pending, outcome)


def _settle(pending: Pending, outcome: Reply | tuple[str, int, str] | Exception) -> None:
    # A request whose client went away was cancelled, and its future with it: what it
    # decided may still have committed (as with any request cut off mid-commit).
    if pending.future.done():
        return
    if isinstance(outcome, Exception):
        pending.future.set_exception(outcome)
    else:
        pending.future.set_result(outcome)


def _guard(decision: Decision, closed: set[str], on_duty: dict[str, str]) -> RuleBroken | None:
    shut = sorted(closed.intersection(decision.open_points))
    if shut:
        work = decision.work
        return RuleBroken(
            f"closed_point_takes_no_{work}", f"{shut[0]} is closed: it takes no {work}"
        )
    for worker in decision.claims:
        if worker in on_duty:
            return RuleBroken(
                "one_open_shift_per_worker",
                f"{worker} is still on {on_duty[worker]}: end it first",
            )
    return None
