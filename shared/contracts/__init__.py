"""Event contracts: the envelope, the field types and every event type of every source."""

from shared.contracts import aid, donation, hotline, people  # noqa: F401  (registers them)
from shared.contracts.envelope import (
    GENESIS,
    BrokenChain,
    Context,
    Envelope,
    Event,
    NewEvent,
    uuid7,
    verify_link,
)
from shared.contracts.registry import REGISTRY, UndecodableEvent

__all__ = [
    "GENESIS",
    "REGISTRY",
    "BrokenChain",
    "Context",
    "Envelope",
    "Event",
    "NewEvent",
    "UndecodableEvent",
    "uuid7",
    "verify_link",
]
