"""The same commands over NATS request-reply, for other services and scripts.

Each command listens on ``<root>.hotline.cmd.<Command>`` in the queue group ``hotline``, so
several replicas share the load. A request's body is the command's JSON (identifiers that
HTTP takes from the path are fields here); the headers are HTTP's (Idempotency-Key,
Kapok-Actor). The reply is ``{"status": 201, "result": {...}}`` or the HTTP error body
``{"status": 422, "error": "...", "field": "..."}``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from services.hotline.application.commands import COMMANDS
from services.hotline.application.service import HotlineService, Reply
from services.hotline.entrypoints.common import handle
from shared.bus.naming import Naming
from shared.service.commands import Command

log = logging.getLogger("kapok.hotline.nats")
QUEUE_GROUP = "hotline"
# Requests handled at once per replica: calls mostly wait on the database, so more than one.
WORKERS = 32


def reply_bytes(reply: Reply) -> bytes:
    if reply.status < 400:
        return b'{"status":%d,"result":%s}' % (reply.status, reply.body)
    return reply.body  # already {"status": ..., "error": ..., ...}


def register(broker: NatsBroker, service: HotlineService, naming: Naming) -> None:
    for name, model in COMMANDS.items():
        broker.subscriber(
            naming.command_subject("hotline", name),
            queue=QUEUE_GROUP,
            max_workers=WORKERS,
            title=f"hotline.cmd.{name}",
            description=(model.__doc__ or name).strip().splitlines()[0],
        )(_handler(service, model))


def _handler(
    service: HotlineService, model: type[Command]
) -> Callable[[NatsMessage], Awaitable[bytes]]:
    async def handler(msg: NatsMessage) -> bytes:
        try:
            reply = await handle(service, model, msg.body, msg.headers or {})
        except Exception:
            # The requester gets an answer instead of a timeout; nothing was committed.
            log.exception("%s failed", model.name())
            return b'{"status":500,"error":"internal error: nothing was stored"}'
        return reply_bytes(reply)

    handler.__name__ = model.name()
    return handler


async def start(broker: NatsBroker) -> None:
    """Start the handlers and wait until the server has their subscriptions: SUBs are
    buffered, so without the flush a request sent right after start-up (from another
    connection) can meet "no responders"."""
    await broker.start()
    await broker.connection.flush()


def build_broker(nats_url: str, service: HotlineService, naming: Naming) -> NatsBroker:
    # Reconnect forever, like the relay: a NATS restart must not end the service's handlers.
    broker = NatsBroker(nats_url, logger=None, max_reconnect_attempts=-1)
    register(broker, service, naming)
    return broker
