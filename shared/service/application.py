"""The application layer's loop: decide on loaded aggregates, then commit the decision's
events, the Idempotency-Key's response and any cross-aggregate writes in one transaction
(shared with the decisions of concurrent requests: see `commit.GroupCommit`).

A stale version (another writer changed an aggregate since it was loaded) means deciding
again on the fresh state, which usually succeeds; after `ATTEMPTS` the client hears 409.
Errors never escape `execute`: they come back as a reply in the one error shape, and since
the transaction rolled back, nothing was stored.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar
from uuid import UUID

import orjson
from sqlalchemy import MetaData, Table
from sqlalchemy.exc import IntegrityError

from shared.auth.principal import Forbidden, Permission, Principal
from shared.contracts.envelope import Context, uuid7_str
from shared.domain.aggregate import Aggregate
from shared.domain.errors import DomainError, InvalidInput, NotFound, RuleBroken
from shared.domain.voids import voided_view
from shared.eventstore import Append, ConcurrencyError, Database, EventStore
from shared.service import idempotency
from shared.service.commands import Command
from shared.service.commit import GroupCommit, Guard
from shared.service.replies import Refused, Reply, refusal_from


def new_id(kind: str) -> str:
    """An aggregate's id: its kind and a UUIDv7, e.g. ``call:01a2…``."""
    return f"{kind}:{uuid7_str()}"


@contextmanager
def batch_item(index: int) -> Iterator[None]:
    """Name the batch item in whatever the domain refuses, so the client can find it."""
    try:
        yield
    except InvalidInput as error:
        error.field = f"items.{index}.{error.field}"
        raise
    except (RuleBroken, NotFound) as error:
        error.message = f"items.{index}: {error.message}"
        error.args = (error.message,)
        raise


A = TypeVar("A", bound=Aggregate)

ATTEMPTS = 3
log = logging.getLogger("kapok.service")


@dataclass(slots=True)
class Decision:
    """What a handler decided: aggregates with pending events (each appended on top of the
    version it was loaded at) and the reply a client gets once they are stored."""

    changed: list[Aggregate]
    status: int
    body: dict[str, Any]
    # Checks or writes spanning aggregates (a unique claim, a guard table), run in the
    # commit's transaction after the store's lock is held; a DomainError refuses the command.
    in_transaction: Guard | None = None
    # Record the events under this correlation id instead of the request's own: a change to
    # an aggregate that continues a flow (the call that led to an aid request) stays in it.
    correlation_id: UUID | None = None

    @classmethod
    def created(cls, aggregate: Aggregate, in_transaction: Guard | None = None) -> Decision:
        return cls([aggregate], 201, aggregate.view(), in_transaction)

    @classmethod
    def changed_one(cls, aggregate: Aggregate, in_transaction: Guard | None = None) -> Decision:
        return cls([aggregate], 200, aggregate.view(), in_transaction)


class Loader:
    """Aggregates rebuilt from the store. A reference of another kind (``call:…`` where a
    point is asked for) is never folded: it loads as an empty aggregate (``exists`` false)."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def one(self, kind: type[A], id: str) -> A:
        if not kind.owns(id):
            return kind(id)
        return kind.rebuild(id, await self.store.load(id))

    async def many(self, kind: type[A], ids: Iterable[str]) -> dict[str, A]:
        wanted = sorted(set(ids))
        owned = [i for i in wanted if kind.owns(i)]
        histories = await self.store.load_many(owned) if owned else {}
        return {
            i: kind.rebuild(i, histories.get(i, [])) if kind.owns(i) else kind(i) for i in wanted
        }

    def committed(self, aggregates: Iterable[Aggregate]) -> None:
        """These aggregates' events were just committed: a loader that caches drops them."""


Handler = Callable[[Any, Loader], Awaitable[Decision]]


class Service(Protocol):
    """What the transports and `process.serve` need of a service: `CommandService`, or a
    service of its own shape."""

    name: str
    store: EventStore
    db: Database

    async def setup(self) -> None: ...

    async def execute(
        self,
        command: Command,
        ctx: Context,
        key: str | None = None,
        fingerprint: str | None = None,
        principal: Principal | None = None,
    ) -> Reply: ...

    async def view(self, kind: type[A], id: str, principal: Principal | None = None) -> Reply: ...


class CommandService:
    """One service's commands over its store: what both transports call."""

    def __init__(
        self,
        store: EventStore,
        handlers: Mapping[type[Command], Handler],
        keys: Table,
        *tables: MetaData,
        load: Loader | None = None,
    ) -> None:
        self.store = store
        self.db: Database = store.db
        self.name: str = store.source
        self.handlers = dict(handlers)
        self.keys = keys
        self.load = load if load is not None else Loader(store)
        self.writer = GroupCommit(store, keys)
        self._metadata = {keys.metadata, *tables}

    async def setup(self) -> None:
        await self.store.setup()
        await self.db.create_schema(*self._metadata)

    async def execute(
        self,
        command: Command,
        ctx: Context,
        key: str | None = None,
        fingerprint: str | None = None,
        principal: Principal | None = None,
    ) -> Reply:
        """Run a validated command. Errors come back as a reply, never raised. ``fingerprint``:
        the request's, from its raw bytes (`idempotency.raw_fingerprint`); without it, the
        validated command's. ``principal``: who asks (None: sign-in is off, or a service's
        own trusted work); their role must allow the command, and every record it changes
        must be within their scope (403 otherwise, before anything is stored)."""
        try:
            if principal is not None:
                principal.require(permission_of(command))
            return await self._execute(command, ctx, key, fingerprint, principal)
        except Refused as refused:
            return refused.reply
        except DomainError as error:
            return refusal_from(error).reply
        except Forbidden as forbidden:
            return Refused(403, forbidden.message, rule=forbidden.rule).reply

    async def _execute(
        self,
        command: Command,
        ctx: Context,
        key: str | None,
        fingerprint: str | None,
        principal: Principal | None,
    ) -> Reply:
        # Only worth computing (a 5,000-item batch is a megabyte of JSON) with a key.
        if key is None:
            print_ = ""
        elif fingerprint is not None:
            print_ = fingerprint
        else:
            print_ = idempotency.fingerprint(command)
        handler = self.handlers[type(command)]
        conflict: Exception | None = None
        for _ in range(ATTEMPTS):
            try:
                decision = await handler(command, self.load)
            except DomainError:
                # A retried request may be refused by the state its first attempt created
                # (a request already cancelled): if its key was answered, that is the answer.
                if key is not None and (stored := await self._stored(key)) is not None:
                    return idempotency.replay(key, print_, stored)
                raise
            if principal is not None and principal.scoped:
                # Decided, nothing stored: every record it would change must be theirs.
                for aggregate in decision.changed:
                    principal.require_reach(aggregate.id, aggregate.where())
            try:
                return await self._commit(decision, ctx, key, print_)
            except ConcurrencyError as error:
                conflict = error
            except IntegrityError as error:
                # Two requests with one key raced past the check (in one group, or on
                # PostgreSQL): the loser's insert of the key fails and its writes roll back;
                # its retry finds the winner's reply.
                if key is None:
                    raise
                conflict = error
        # The store's own words for a stale version; a database's constraint error would
        # hand the client SQL and parameters, so it is logged and summarised instead.
        if isinstance(conflict, IntegrityError):
            log.warning("%s: integrity conflict on every attempt: %s", self.name, conflict)
            conflict = ConcurrencyError("a concurrent request wrote the same record")
        raise Refused(409, f"concurrency conflict: {conflict}", rule="concurrency_conflict")

    async def _commit(
        self, decision: Decision, ctx: Context, key: str | None, print_: str
    ) -> Reply:
        appends = [Append(a.id, a.version, a.pending) for a in decision.changed]
        if decision.correlation_id is not None:
            ctx = replace(ctx, correlation_id=decision.correlation_id)
        reply = Reply(decision.status, orjson.dumps(decision.body))
        reply = await self.writer.commit(appends, decision.in_transaction, reply, ctx, key, print_)
        self.load.committed(decision.changed)
        return reply

    async def _stored(self, key: str) -> idempotency.Stored | None:
        async with self.db.read() as conn:
            return await idempotency.stored_reply(conn, self.keys, key)

    async def view(self, kind: type[A], id: str, principal: Principal | None = None) -> Reply:
        """Current state of one aggregate, from its events: for a principal whose role reads
        records, within their scope."""
        if principal is not None and not principal.may(Permission.READ_RECORDS):
            return _forbidden(lambda: principal.require(Permission.READ_RECORDS))
        aggregate = await self.load.one(kind, id)
        if not aggregate.exists:
            return refusal_from(NotFound(id)).reply
        if principal is not None and not principal.reaches(aggregate.where()):
            return _forbidden(lambda: principal.require_reach(id, aggregate.where()))
        if aggregate.id in aggregate.voided:
            return Reply(200, orjson.dumps(voided_view(aggregate)))
        return Reply(200, orjson.dumps(aggregate.view()))


def permission_of(command: Command) -> Permission:
    """A void or a correction takes the correcting role; any other command records work."""
    return Permission.CORRECT if command.corrects else Permission.RECORD


def _forbidden(check: Callable[[], None]) -> Reply:
    try:
        check()
    except Forbidden as forbidden:
        return Refused(403, forbidden.message, rule=forbidden.rule).reply
    raise AssertionError("the check passed")
