"""The SQL event store: every service's source of truth and its transactional outbox."""

from shared.eventstore.database import Database
from shared.eventstore.store import Append, ConcurrencyError, EventStore, StoredEvent

__all__ = ["Append", "ConcurrencyError", "Database", "EventStore", "StoredEvent"]
