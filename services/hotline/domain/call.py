"""Call: received at an open point (one service given), then completed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.hotline.domain.point import HotlinePoint
from shared.contracts.envelope import Event
from shared.contracts.hotline import (
    CallCompleted,
    CallOutcome,
    CallReceived,
    CallVoided,
    Category,
    Channel,
)
from shared.contracts.types import Group, Place
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import RuleBroken
from shared.domain.voids import restate


class Call(Aggregate):
    kind = "call"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.point = ""
        self.place: Place | None = None
        self.category: Category | None = None
        self.group: Group | None = None
        self.channel: Channel | None = None
        self.caller: str | None = None
        self.received_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.outcome: CallOutcome | None = None
        self.duration_seconds: int | None = None

    @classmethod
    def receive(
        cls,
        id: str,
        point: HotlinePoint,
        category: Category,
        group: Group,
        channel: Channel,
        caller: str | None,
        at: datetime,
    ) -> Call:
        place = point.takes("calls", at)
        call = cls(id)
        call.record(
            CallReceived(
                call=id,
                point=point.id,
                place=place,
                category=category,
                group=group,
                channel=channel,
                caller=caller,
            ),
            at,
        )
        return call

    def complete(self, outcome: CallOutcome, duration_seconds: int, at: datetime) -> None:
        self.must_exist()
        if self.completed_at is not None:
            raise RuleBroken("call_completes_once", f"{self.id} is already completed")
        assert self.received_at and self.place and self.category and self.group
        if at < self.received_at:
            raise RuleBroken(
                "call_completes_after_received",
                f"completed_at {iso(at)} is before {self.id} was received",
            )
        self.record(
            CallCompleted(
                call=self.id,
                point=self.point,
                place=self.place,
                category=self.category,
                group=self.group,
                outcome=outcome,
                duration_seconds=duration_seconds,
            ),
            at,
        )

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case CallReceived():
                self.point, self.place = data.point, data.place
                self.category, self.group = data.category, data.group
                self.channel, self.caller, self.received_at = data.channel, data.caller, at
            case CallCompleted():
                self.completed_at, self.outcome = at, data.outcome
                self.duration_seconds = data.duration_seconds
            case CallVoided():
                restate(self, data)

    def view(self) -> dict[str, Any]:
        return {
            "call": self.id,
            "status": "completed" if self.completed_at else "received",
            "point": self.point,
            "place": self.place.model_dump() if self.place else None,
            "category": self.category,
            "group": self.group,
            "channel": self.channel,
            "caller": self.caller,
            "received_at": iso(self.received_at),
            "completed_at": iso(self.completed_at),
            "outcome": self.outcome,
            "duration_seconds": self.duration_seconds,
            "version": self.latest_version,
        }
