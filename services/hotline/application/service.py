"""The hotline's application service: validate, decide, commit; and the error shape both
entrypoints answer with.

A command's events commit in one transaction with the guards that span aggregates (closed
points, one open shift per worker), the open-shift table and the Idempotency-Key's response;
concurrent commands share that transaction (see `unit_of_work.GroupCommit`).
"""

from __future__ import annotations

import hashlib
from typing import TypeVar

import orjson
from pydantic import ValidationError

from services.hotline.adapters import tables
from services.hotline.application.handlers import HANDLERS, gc_paused
from services.hotline.application.loader import Loader
from services.hotline.application.unit_of_work import Deferred, GroupCommit, Reply
from shared.contracts.envelope import Context
from shared.eventstore import ConcurrencyError, Database, EventStore
from shared.service.aggregate import Aggregate
from shared.service.commands import Command
from shared.service.errors import DomainError, InvalidInput, NotFound, RuleBroken

C = TypeVar("C", bound=Command)
A = TypeVar("A", bound=Aggregate)

# A stale version means another writer changed the aggregate since it was loaded: deciding
# again on the fresh state usually succeeds; if it keeps failing the client hears 409.
ATTEMPTS = 3


class Refused(Exception):
    """A request refused before anything was stored; ``reply`` says why, in the one shape."""

    def __init__(self, status: int, error: str, **detail: str) -> None:
        super().__init__(error)
        self.reply = Reply(status, orjson.dumps({"status": status, "error": error, **detail}))


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
        with gc_paused():  # a batch is tens of thousands of objects: see gc_paused
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
        self.writer = GroupCommit(store)

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
        # What the key stands for; only worth computing (a 5,000-item batch is a megabyte of
        # JSON) when there is a key.
        fingerprint = (
            hashlib.sha256(f"{command.name()}\n{command.model_dump_json()}".encode()).hexdigest()
            if key is not None
            else ""
        )
        conflict: ConcurrencyError | None = None
        attempts = 0
        while attempts < ATTEMPTS:
            try:
                decision = await HANDLERS[type(command)](command, self.load)
            except DomainError:
                # A retried request may be refused by the state its first attempt created
                # (a call already completed): if its key was answered, that is the answer.
                # Checked here, not before every decision: one read less on the hot path,
                # and the commit checks the key anyway.
                if key is not None and (stored := await self._stored(key)) is not None:
                    return replay(key, fingerprint, stored)
                raise
            try:
                outcome = await self.writer.commit(decision, ctx, key, fingerprint)
            except Deferred:
                continue  # collided with a request of the same group: decide again
            except ConcurrencyError as error:
                conflict, attempts = error, attempts + 1
                continue
            if isinstance(outcome, Reply):
                self.load.forget([a.id for a in decision.changed])
                return outcome
            return replay(key or "", fingerprint, outcome)
        raise Refused(409, f"concurrency conflict: {conflict}", rule="concurrency_conflict")

    async def _stored(self, key: str) -> tuple[str, int, str] | None:
        async with self.db.read() as conn:
            return await tables.stored_reply(conn, key)

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
