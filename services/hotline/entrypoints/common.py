"""What both transports do with a request: read the headers, validate, execute."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import TypeAdapter, ValidationError

from services.hotline.application.service import HotlineService, Refused, Reply, parse
from shared.contracts.envelope import SYSTEM, Context
from shared.contracts.types import Actor
from shared.service.commands import Command

IDEMPOTENCY_KEY = "Idempotency-Key"
# Who asks: a worker's or service's reference; recorded on every event as the actor.
ACTOR = "Kapok-Actor"
MAX_KEY = 200

_actor = TypeAdapter(Actor)


async def handle(
    service: HotlineService,
    model: type[Command],
    raw: bytes,
    headers: Mapping[str, str],
    **path: str,
) -> Reply:
    try:
        key = headers.get(IDEMPOTENCY_KEY) or headers.get(IDEMPOTENCY_KEY.lower())
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            raise Refused(422, f"at most {MAX_KEY} characters", field=IDEMPOTENCY_KEY)
        actor = headers.get(ACTOR) or headers.get(ACTOR.lower()) or SYSTEM
        try:
            _actor.validate_python(actor)
        except ValidationError as error:
            raise Refused(
                422, "worker:<ref>, volunteer:<ref>, service:<name> or system", field=ACTOR
            ) from error
        command = parse(model, raw, **path)
    except Refused as refused:
        return refused.reply
    return await service.execute(command, Context(actor=actor), key)
