"""The hotline's application layer: its store, handlers, point cache and key table, on the
toolkit (`shared.service.CommandService`: validate, decide, group commit, one error shape).

A command's events commit in one transaction with the guards that span aggregates (closed
points, one open shift per worker: see `guards`), the open-shift table and the
Idempotency-Key's response; concurrent commands share that transaction.
"""

from __future__ import annotations

from services.hotline.adapters import tables
from services.hotline.application.handlers import HANDLERS
from services.hotline.application.loader import HotlineLoader
from shared.eventstore import EventStore
from shared.service.application import CommandService

SERVICE = "hotline"


def hotline_service(store: EventStore) -> CommandService:
    return CommandService(store, HANDLERS, tables.idempotency, load=HotlineLoader(store))
