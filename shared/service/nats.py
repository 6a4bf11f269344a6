"""A service's commands over NATS request-reply (FastStream), for other services and scripts.

Each command listens on ``<root>.<service>.cmd.<Command>`` in the queue group ``<service>``,
so several replicas share the load. A request's body is the command's JSON (identifiers that
HTTP takes from the path are fields here); the headers are HTTP's (Authorization: Bearer
<token>, Idempotency-Key): the bus's own identities say which process may ask at all, the
token says who asks. The reply is ``{"status": 201, "result": {...}}`` or the HTTP error body.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from shared.auth.gate import Gate
from shared.bus.naming import Naming
from shared.bus.servers import servers
from shared.service.application import Service
from shared.service.commands import Command
from shared.service.replies import INTERNAL_ERROR, Reply
from shared.service.transport import handle

log = logging.getLogger("kapok.service.nats")
# Requests handled at once per replica: commands mostly wait on the database, so many.
WORKERS = 32


def reply_bytes(reply: Reply) -> bytes:
    if reply.status < 400:
        return b'{"status":%d,"result":%s}' % (reply.status, reply.body)
    return reply.body  # already {"status": ..., "error": ..., ...}


def build_broker(
    nats_url: str,
    service: Service,
    gate: Gate,
    naming: Naming,
    commands: Mapping[str, type[Command]],
    options: Mapping[str, Any] | None = None,
) -> NatsBroker:
    """``options``: how it signs in (`shared.runtime.connect_options`)."""
    # Never give up reconnecting (nats-py's default stops after 60 attempts): a replica must
    # answer again when NATS comes back, however long it was away.
    broker = NatsBroker(
        servers(nats_url),
        logger=None,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        **(options or {}),
    )
    for name, model in commands.items():
        broker.subscriber(
            naming.command_subject(service.name, name),
            queue=service.name,
            max_workers=WORKERS,
            title=f"{service.name}.cmd.{name}",
            description=(model.__doc__ or name).strip().splitlines()[0],
        )(_handler(service, gate, model))
    return broker


def _handler(
    service: Service, gate: Gate, model: type[Command]
) -> Callable[[NatsMessage], Awaitable[bytes]]:
    async def handler(msg: NatsMessage) -> bytes:
        try:
            reply = await handle(service, gate, model, msg.body, msg.headers or {})
        except Exception:
            # The requester gets an answer instead of a timeout; nothing was committed.
            log.exception("%s.%s failed", service.name, model.name())
            return INTERNAL_ERROR
        return reply_bytes(reply)

    handler.__name__ = model.name()
    return handler


async def start(broker: NatsBroker) -> None:
    """Start the handlers and wait until the server has their subscriptions, so a request
    sent right after start-up (from another connection) never meets "no responders".

    Twice, because nats-py's flush writes its PING straight to the socket while the SUBs
    still wait in its outgoing buffer: the first PONG can return before the server has seen
    them. By the second PING the buffer has gone out ahead of it."""
    await broker.start()
    await broker.connection.flush()
    await broker.connection.flush()
