"""The donation service's application layer: its store, handlers and key table, on the
toolkit."""

from __future__ import annotations

from services.donation.adapters import tables
from services.donation.application.additive import DonationService
from services.donation.application.handlers import HANDLERS
from shared.eventstore import EventStore

SERVICE = "donation"


def donation_service(store: EventStore) -> DonationService:
    return DonationService(store, HANDLERS, tables.idempotency)
