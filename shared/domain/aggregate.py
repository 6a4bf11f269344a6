"""What every aggregate shares: a stream id, a version and the events it has just decided."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Self
from uuid import UUID

from shared.contracts.envelope import Envelope, Event, NewEvent
from shared.domain.errors import NotFound


class Aggregate:
    # The prefix of its references, e.g. "call" for "call:0192...": a stream id names its kind.
    kind: ClassVar[str]

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0  # the version the decision is made on: the append's expected version
        self.pending: list[NewEvent] = []
        # The correlation id of its first event: the business flow it belongs to (a call, for
        # a request a hotline referral opened), which later changes may carry on.
        self.correlation_id: UUID | None = None

    @classmethod
    def rebuild(cls, id: str, history: Iterable[Envelope[Any]]) -> Self:
        aggregate = cls(id)
        for envelope in history:
            if aggregate.correlation_id is None:
                aggregate.correlation_id = envelope.correlation_id
            aggregate.apply(envelope.data, envelope.occurred_at)
            aggregate.version = envelope.version
        return aggregate

    @classmethod
    def owns(cls, id: str) -> bool:
        return id.startswith(cls.kind + ":")

    @property
    def latest_version(self) -> int:
        """The version once the pending events are appended: what a reply reports."""
        return self.version + len(self.pending)

    @property
    def exists(self) -> bool:
        return self.version > 0 or bool(self.pending)

    def must_exist(self) -> None:
        if not self.exists:
            raise NotFound(self.id)

    def record(self, data: Event, at: datetime) -> None:
        """Keep a decided event for the append and fold it, so a next step sees its effect."""
        self.pending.append(NewEvent(data, at))
        self.apply(data, at)

    def apply(self, data: Event, at: datetime) -> None:
        raise NotImplementedError

    def view(self) -> dict[str, Any]:
        """Current state as JSON-ready data: what GET returns and what a command answers."""
        raise NotImplementedError


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
