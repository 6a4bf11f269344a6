"""What every aggregate shares: a stream id, a version and the events it has just decided."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Self
from uuid import UUID

from shared.contracts.envelope import Envelope, Event, NewEvent
from shared.domain.errors import NotFound, RuleBroken
from shared.domain.where import Where


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
        # Its events as they stand, with their business times: what a void takes out. A
        # void restates the aggregate without them (`shared.domain.voids`), and its facts
        # voided with nothing in their place are kept by reference with the reason.
        self.history: list[tuple[Event, datetime]] = []
        self.voided: dict[str, str] = {}
        # Where it was before a void took the events that placed it (`voids.restate`): a
        # voided call stays its station's, for who may read or correct it.
        self.was_at: Where | None = None

    @classmethod
    def rebuild(cls, id: str, history: Iterable[Envelope[Any]]) -> Self:
        aggregate = cls(id)
        for envelope in history:
            if aggregate.correlation_id is None:
                aggregate.correlation_id = envelope.correlation_id
            aggregate.apply_stored(envelope.data, envelope.occurred_at)
            aggregate.version = envelope.version
        return aggregate

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """A copy to decide on (a cache's): the history's events are immutable, so the copy
        shares them and copies only the list, which a long campaign's deep copy would
        otherwise spend most of its time on."""
        clone = copy.copy(self)
        for name, value in vars(self).items():
            shared = name == "history"
            setattr(clone, name, list(value) if shared else copy.deepcopy(value, memo))
        return clone

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
        if self.id in self.voided:
            raise RuleBroken(
                "voided_takes_no_change", f"{self.id} was voided ({self.voided[self.id]})"
            )

    def apply_stored(self, data: Event, at: datetime) -> None:
        """Fold an event read from the store (its history keeps it, for a void to take out)."""
        self.history.append((data, at))
        self.apply(data, at)

    def record(self, data: Event, at: datetime) -> None:
        """Keep a decided event for the append and fold it, so a next step sees its effect."""
        self.pending.append(NewEvent(data, at))
        self.history.append((data, at))
        self.apply(data, at)

    def apply(self, data: Event, at: datetime) -> None:
        raise NotImplementedError

    def view(self) -> dict[str, Any]:
        """Current state as JSON-ready data: what GET returns and what a command answers."""
        raise NotImplementedError

    def where(self) -> Where | None:
        """Where it is, for a principal's scope: by its place (a station's records), else by
        its own district and station (a volunteer link) or districts (a campaign); None when
        it has none (association-wide: only unscoped roles reach it)."""
        place = getattr(self, "place", None)
        if place is not None:
            return Where((place.district,), place.station)
        districts = getattr(self, "districts", None)
        if districts:
            return Where(tuple(districts))
        district = getattr(self, "district", None)
        if district is not None:
            return Where((district,), getattr(self, "station", None))
        return self.was_at


def iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None
