"""What both transports do with a request: read the headers, validate, execute."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

from shared.contracts.envelope import SYSTEM, Context
from shared.contracts.types import Actor
from shared.service import idempotency
from shared.service.application import Service
from shared.service.commands import Command
from shared.service.replies import DATABASE, Refused, Reply, parse, unavailable

IDEMPOTENCY_KEY = "Idempotency-Key"
# Who asks: a worker's or service's reference; recorded on every event as the actor.
ACTOR = "Kapok-Actor"
MAX_KEY = 200

_actor = TypeAdapter(Actor)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # HTTP headers arrive case-insensitive (Starlette); NATS headers as sent.
    return headers.get(name) or headers.get(name.lower())


async def handle(
    service: Service,
    model: type[Command],
    raw: bytes,
    headers: Mapping[str, str],
    **path: str,
) -> Reply:
    try:
        key = _header(headers, IDEMPOTENCY_KEY)
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            raise Refused(422, f"at most {MAX_KEY} characters", field=IDEMPOTENCY_KEY)
        given = _header(headers, ACTOR)
        actor = SYSTEM if given is None else given  # an empty one is not the default
        try:
            if actor is not SYSTEM:  # the default needs no validating
                _actor.validate_python(actor)
        except ValidationError as error:
            raise Refused(
                422, "worker:<ref>, volunteer:<ref>, service:<name> or system", field=ACTOR
            ) from error
        command = parse(model, raw, **path)
    except Refused as refused:
        return refused.reply
    # From the JSON received: cheaper than re-serialising the validated command.
    fingerprint = idempotency.raw_fingerprint(model, raw, path) if key is not None else None
    try:
        reply = await service.execute(command, Context(actor=actor), key, fingerprint)
    except Exception as error:
        # The database away: 503 in the one error shape, the outage logged once.
        if (unavailable_reply := unavailable(error)) is None:
            raise
        return unavailable_reply
    if DATABASE.since is not None:
        DATABASE.ok()
    return reply
