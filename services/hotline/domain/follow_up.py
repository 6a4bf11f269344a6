"""FollowUp: a tracked service (跟踪服务) to a person in a vulnerable group, scheduled and
completed. The completed follow-up is a service given and a tracked service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.hotline.domain.call import Call
from services.hotline.domain.point import HotlinePoint
from shared.contracts.envelope import Event
from shared.contracts.hotline import (
    Category,
    FollowUpChannel,
    FollowUpCompleted,
    FollowUpScheduled,
    FollowUpVoided,
)
from shared.contracts.types import Group, Place, VulnerableGroup
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import RuleBroken
from shared.domain.voids import restate


class FollowUp(Aggregate):
    kind = "follow-up"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.person = ""
        self.group: VulnerableGroup | None = None
        self.point = ""
        self.place: Place | None = None
        self.category: Category | None = None
        self.due_at: datetime | None = None
        self.call: str | None = None
        self.scheduled_at: datetime | None = None
        self.completed_at: datetime | None = None
        self.channel: FollowUpChannel | None = None

    @classmethod
    def schedule(
        cls,
        id: str,
        person: str,
        group: Group,
        point: HotlinePoint,
        category: Category,
        due_at: datetime,
        at: datetime,
        call: Call | None = None,
    ) -> FollowUp:
        if group == "general":
            raise RuleBroken(
                "follow_ups_are_for_vulnerable_groups",
                "a tracked follow-up is for a person in a vulnerable group, not `general`",
            )
        place = point.takes("follow_ups", at)
        if call is not None:
            call.must_exist()
            assert call.received_at is not None
            if at < call.received_at:
                raise RuleBroken(
                    "follow_up_after_its_call",
                    f"scheduled_at {iso(at)} is before {call.id} was received",
                )
        if due_at < at:
            raise RuleBroken(
                "follow_up_due_after_scheduled",
                f"due_at {iso(due_at)}: a follow-up is due after it is scheduled ({iso(at)})",
            )
        follow_up = cls(id)
        follow_up.record(
            FollowUpScheduled(
                follow_up=id,
                person=person,
                group=group,
                point=point.id,
                place=place,
                category=category,
                due_at=due_at,
                call=call.id if call else None,
            ),
            at,
        )
        return follow_up

    def complete(self, channel: FollowUpChannel, at: datetime) -> None:
        self.must_exist()
        if self.completed_at is not None:
            raise RuleBroken("follow_up_completes_once", f"{self.id} is already completed")
        assert self.scheduled_at and self.group and self.place and self.category
        if at < self.scheduled_at:
            raise RuleBroken(
                "follow_up_completes_after_scheduled",
                f"completed_at {iso(at)} is before {self.id} was scheduled",
            )
        self.record(
            FollowUpCompleted(
                follow_up=self.id,
                person=self.person,
                group=self.group,
                point=self.point,
                place=self.place,
                category=self.category,
                channel=channel,
            ),
            at,
        )

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case FollowUpScheduled():
                self.person, self.group, self.point = data.person, data.group, data.point
                self.place, self.category, self.due_at = data.place, data.category, data.due_at
                self.call, self.scheduled_at = data.call, at
            case FollowUpCompleted():
                self.completed_at, self.channel = at, data.channel
            case FollowUpVoided():
                restate(self, data)

    def view(self) -> dict[str, Any]:
        return {
            "follow_up": self.id,
            "status": "completed" if self.completed_at else "scheduled",
            "person": self.person,
            "group": self.group,
            "point": self.point,
            "place": self.place.model_dump() if self.place else None,
            "category": self.category,
            "due_at": iso(self.due_at),
            "call": self.call,
            "scheduled_at": iso(self.scheduled_at),
            "completed_at": iso(self.completed_at),
            "channel": self.channel,
            "version": self.latest_version,
        }
