"""What both transports do with a request: sign it in, read the headers, validate, execute."""

from __future__ import annotations

from collections.abc import Mapping

from shared import logs
from shared.auth.gate import AUTHORIZATION, Gate
from shared.auth.registry import Unauthorized
from shared.contracts.envelope import SYSTEM, Context
from shared.service import idempotency
from shared.service.application import Service
from shared.service.commands import Command
from shared.service.replies import DATABASE, Refused, Reply, parse, unavailable

IDEMPOTENCY_KEY = "Idempotency-Key"
MAX_KEY = 200


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # HTTP headers arrive case-insensitive (Starlette); NATS headers as sent.
    return headers.get(name) or headers.get(name.lower())


def unauthorized(error: Unauthorized) -> Reply:
    return Refused(401, str(error), field=AUTHORIZATION).reply


async def handle(
    service: Service,
    gate: Gate,
    model: type[Command],
    raw: bytes,
    headers: Mapping[str, str],
    **path: str,
) -> Reply:
    try:
        principal = gate.principal(_header(headers, AUTHORIZATION))
    except Unauthorized as error:
        return unauthorized(error)
    try:
        key = _header(headers, IDEMPOTENCY_KEY)
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            raise Refused(422, f"at most {MAX_KEY} characters", field=IDEMPOTENCY_KEY)
        command = parse(model, raw, **path)
    except Refused as refused:
        return refused.reply
    # From the JSON received: cheaper than re-serialising the validated command.
    fingerprint = idempotency.raw_fingerprint(model, raw, path) if key is not None else None
    # Who did it is who signed in, never what a header claims (README, "Signing in").
    context = Context(actor=principal.actor if principal is not None else SYSTEM)
    logs.correlation.set(str(context.correlation_id))  # in this request's log lines (JSON)
    try:
        reply = await service.execute(command, context, key, fingerprint, principal)
    except Exception as error:
        # The database away: 503 in the one error shape, the outage logged once.
        if (unavailable_reply := unavailable(error)) is None:
            raise
        return unavailable_reply
    if DATABASE.since is not None:
        DATABASE.ok()
    return reply
