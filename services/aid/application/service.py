"""The aid service's application layer: its store, handlers and key table, on the toolkit."""

from __future__ import annotations

from services.aid.adapters import tables
from services.aid.application.handlers import HANDLERS
from shared.eventstore import EventStore
from shared.service.application import CommandService

SERVICE = "aid"


def aid_service(store: EventStore) -> CommandService:
    return CommandService(store, HANDLERS, tables.idempotency)
