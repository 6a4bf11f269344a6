"""The donation service's application layer: its store, handlers and key table, on the
toolkit."""

from __future__ import annotations

from services.donation.adapters import tables
from services.donation.application.handlers import HANDLERS
from shared.eventstore import EventStore
from shared.service.application import CommandService

SERVICE = "donation"


def donation_service(store: EventStore) -> CommandService:
    return CommandService(store, HANDLERS, tables.idempotency)
