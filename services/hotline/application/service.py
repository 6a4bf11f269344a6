"""The hotline's application service: validate, decide, commit; and the error shape both
entrypoints answer with.

A command commits in one transaction: the events (`EventStore.append_in`), the guards that
span aggregates, the open-shift table and the Idempotency-Key's response. The guards are
checked after `append_in`, because `append_in` first locks the source's head row: every
hotline writer takes that lock, so what the guards read then cannot change before the commit
(on PostgreSQL in READ COMMITTED each statement sees every transaction committed before it;
on SQLite the writer is one BEGIN IMMEDIATE transaction at a time anyway).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from services.hotline.adapters import tables
from services.hotline.application.commands import Command
from services.hotline.application.handlers import HANDLERS, Decision
from services.hotline.application.loader import Loader
from services.hotline.domain import (
    Aggregate,
    DomainError,
    InvalidInput,
    NotFound,
    RuleBroken,
)
from shared.contracts.envelope import Context
from shared.eventstore import Append, ConcurrencyError, Database, EventStore

C = TypeVar("C", bound=Command)
A = TypeVar("A", bound=Aggregate)

# A stale version means another writer changed the aggregate since it was loaded: deciding
# again on the fresh state usually succeeds; if it keeps failing the client hears 409.
ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Reply:
    """What a transport sends back: an HTTP-like status and a JSON body (bytes, so a stored
    reply is returned exactly as it was first sent)."""

    status: int
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


class Refused(Exception):
    """A request refused before anything was stored; ``reply`` says why, in the one shape."""

    def __init__(self, status: int, error: str, **detail: str) -> None:
        super().__init__(error)
        self.reply = Reply(status, orjson.dumps({"status": status, "error": error, **detail}))


class _Replay(Exception):
    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def parse(model: type[C], raw: bytes | str, **path: str) -> C:
    """Validate a request body (JSON bytes); ``path`` adds identifiers taken from an HTTP path.
    Raises `Refused` (422) naming the first offending field."""
    try:
        if path:
            body = orjson.loads(raw or b"null")
            if not isinstance(body, dict):
                raise Refused(422, "the body must be a JSON object", field="body")
            for name in path:
                if name in body:
                    raise Refused(422, f"{name} is taken from the path", field=name)
            raw = orjson.dumps({**body, **path})
        return model.model_validate_json(raw)
    except orjson.JSONDecodeError as error:
        raise Refused(422, f"the body is not JSON: {error}", field="body") from error
    except ValidationError as error:
        raise refusal_of(error) from error


def refusal_of(error: ValidationError) -> Refused:
    errors = error.errors(include_url=False)
    # "Too many items" first: with 5,001 items, the count is the thing to fix.
    first = min(errors, key=lambda e: len(e["loc"]))
    loc = [str(part) for part in first["loc"]]
    message = first["msg"]
    if first["type"] == "value_error":
        message = message.removeprefix("Value error, ")
        named, sep, rest = message.partition(": ")
        if sep and named.isidentifier():  # a model check naming its field ("outcome: ...")
            loc, message = [*loc, named], rest
    if first["type"] == "json_invalid":
        loc = ["body"]
    field = ".".join(loc) or "body"
    return Refused(422, f"{field}: {message}", field=field)


def refusal_from(error: DomainError) -> Refused:
    if isinstance(error, InvalidInput):
        return Refused(422, f"{error.field}: {error.message}", field=error.field)
    if isinstance(error, NotFound):
        return Refused(404, error.message, resource=error.resource)
    assert isinstance(error, RuleBroken)
    return Refused(409, error.message, rule=error.rule)


class HotlineService:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self.db: Database = store.db
        self.load = Loader(store)

    async def setup(self) -> None:
        await self.store.setup()
        await self.db.create_schema(tables.metadata)

    async def execute(self, command: Command, ctx: Context, key: str | None = None) -> Reply:
        """Run a validated command. Errors come back as a `Refused` reply, never raised."""
        try:
            return await self._execute(command, ctx, key)
        except Refused as refused:
            return refused.reply
        except DomainError as error:
            return refusal_from(error).reply

    async def _execute(self, command: Command, ctx: Context, key: str | None) -> Reply:
        fingerprint = hashlib.sha256(
            f"{command.name()}\n{command.model_dump_json()}".encode()
        ).hexdigest()
        if key is not None:
            # Before deciding: a retried "complete" must get its first answer, not a 409
            # from the state its first attempt created.
            async with self.db.read() as conn:
                stored = await tables.stored_reply(conn, key)
            if stored is not None:
                return replay(key, fingerprint, stored)
        conflict: ConcurrencyError | None = None
        for _ in range(ATTEMPTS):
            decision = await HANDLERS[type(command)](command, self.load)
            try:
                return await self.commit(decision, ctx, key, fingerprint)
            except _Replay as replayed:
                return replayed.reply
            except ConcurrencyError as error:
                conflict = error
        raise Refused(409, f"concurrency conflict: {conflict}", rule="concurrency_conflict")

    async def commit(
        self, decision: Decision, ctx: Context, key: str | None, fingerprint: str
    ) -> Reply:
        appends = [Append(a.id, a.version, a.pending) for a in decision.changed]
        reply = Reply(decision.status, orjson.dumps(decision.body))
        async with self.db.write() as conn:
            await self.store.append_in(conn, appends, ctx)
            # From here the head row is locked: the reads below are final until the commit.
            if key is not None:
                stored = await tables.stored_reply(conn, key)
                if stored is not None:  # the same request committed while this one decided
                    raise _Replay(replay(key, fingerprint, stored))
            if decision.open_points:
                closed = await tables.closed_points_among(conn, sorted(decision.open_points))
                if closed:
                    raise RuleBroken(
                        f"closed_point_takes_no_{decision.work}",
                        f"{closed[0]} is closed: it takes no {decision.work}",
                    )
            if decision.releases:
                await tables.release_shifts(conn, decision.releases)
            if decision.claims:
                busy = await tables.open_shifts_of(conn, sorted(decision.claims))
                if busy:
                    worker, shift = next(iter(busy.items()))
                    raise RuleBroken(
                        "one_open_shift_per_worker", f"{worker} is still on {shift}: end it first"
                    )
                await tables.claim_shifts(conn, decision.claims)
            if key is not None:
                await tables.save_reply(conn, key, fingerprint, reply.status, reply.body.decode())
        return reply

    async def view(self, kind: type[A], id: str) -> Reply:
        """Current state of one aggregate, from its events."""
        aggregate = await self.load.one(kind, id)
        if not aggregate.exists:
            return refusal_from(NotFound(id)).reply
        return Reply(200, orjson.dumps(aggregate.view()))


def replay(key: str, fingerprint: str, stored: tuple[str, int, str]) -> Reply:
    first_fingerprint, status, body = stored
    if first_fingerprint != fingerprint:
        raise Refused(
            422,
            f"Idempotency-Key {key!r} was first used for another request; use a new key",
            field="Idempotency-Key",
        )
    return Reply(status, body.encode())
