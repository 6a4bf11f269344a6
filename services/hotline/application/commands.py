"""The hotline's commands: what a station, a worker or a script asks the service to do.

Validation (strict JSON, unknown fields refused, times with an offset and not in the future)
is `shared.service.commands`'.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import ConfigDict, Field, model_validator

from shared.contracts.hotline import (
    CallOutcome,
    Category,
    Channel,
    FollowUpChannel,
    PointClosure,
    PointSite,
)
from shared.contracts.refs import PersonRef
from shared.contracts.types import (
    CallSeconds,
    GivenPlace,
    Group,
    Needs,
    Ref,
    Urgency,
    VulnerableGroup,
    both_or_neither,
)
from shared.service.commands import MAX_BATCH, Command, Happened, Planned
from shared.service.corrections import Void

WorkerRef = Annotated[Ref, Field(pattern=r"^worker:[A-Za-z0-9._-]+$")]


class OpenHotlinePoint(Command):
    place: GivenPlace
    site: PointSite = "station"
    opened_at: Happened


class ClosePoint(Command):
    point: Ref
    reason: PointClosure
    closed_at: Happened


class StartShift(Command):
    point: Ref
    worker: WorkerRef
    started_at: Happened


class EndShift(Command):
    shift: Ref
    ended_at: Happened


class ReceiveCall(Command):
    point: Ref
    category: Category
    group: Group
    channel: Channel
    caller: PersonRef | None = Field(
        default=None, description="issued by Kapok; absent if anonymous"
    )
    received_at: Happened


class CompleteCall(Command):
    call: Ref
    outcome: CallOutcome
    duration_seconds: CallSeconds
    completed_at: Happened


class ReferToAid(Command):
    call: Ref
    needs: Needs
    urgency: Urgency
    referred_at: Happened
    person: PersonRef | None = Field(default=None, description="default: the call's caller")
    group: Group | None = Field(default=None, description="default: the caller's group")
    place: GivenPlace | None = Field(default=None, description="default: the call's station")


class ScheduleFollowUp(Command):
    person: PersonRef
    group: VulnerableGroup
    point: Ref
    category: Category
    due_at: Planned
    scheduled_at: Happened
    call: Ref | None = None


class CompleteFollowUp(Command):
    follow_up: Ref
    channel: FollowUpChannel
    completed_at: Happened


# -- a day's log in one request: all or nothing -----------------------------------------------


class LoggedCall(ReceiveCall):
    """A call as a station's log has it: received and, if it is over, its outcome. The call
    completes at received_at + duration_seconds."""

    outcome: CallOutcome | None = None
    duration_seconds: CallSeconds | None = None

    model_config = ConfigDict(json_schema_extra=both_or_neither("outcome", "duration_seconds"))

    @model_validator(mode="after")
    def _outcome_with_duration(self) -> Self:
        if (self.outcome is None) != (self.duration_seconds is None):
            missing = "duration_seconds" if self.duration_seconds is None else "outcome"
            raise ValueError(f"{missing}: a completed call has both outcome and duration_seconds")
        return self


class LoggedFollowUp(ScheduleFollowUp):
    completed_at: Happened | None = None
    channel: FollowUpChannel | None = None

    model_config = ConfigDict(json_schema_extra=both_or_neither("completed_at", "channel"))

    @model_validator(mode="after")
    def _completed_with_channel(self) -> Self:
        if (self.completed_at is None) != (self.channel is None):
            missing = "channel" if self.channel is None else "completed_at"
            raise ValueError(f"{missing}: a completed follow-up has both completed_at and channel")
        return self


class LoggedShift(StartShift):
    ended_at: Happened | None = None


class ReceiveCalls(Command):
    items: Annotated[list[LoggedCall], Field(min_length=1, max_length=MAX_BATCH)]


class ReferToAids(Command):
    """A day's referrals to aid, sent together in the evening: all or nothing."""

    items: Annotated[list[ReferToAid], Field(min_length=1, max_length=MAX_BATCH)]


class ScheduleFollowUps(Command):
    items: Annotated[list[LoggedFollowUp], Field(min_length=1, max_length=MAX_BATCH)]


class StartShifts(Command):
    items: Annotated[list[LoggedShift], Field(min_length=1, max_length=MAX_BATCH)]


# -- corrections: a fact voided, or voided and recorded again (application/corrections.py) --


class VoidCall(Void):
    call: Ref


class CorrectCall(LoggedCall, Void):
    """The call as it really was, in place of what was recorded."""

    call: Ref


class VoidFollowUp(Void):
    follow_up: Ref


class CorrectFollowUp(LoggedFollowUp, Void):
    """The follow-up as it really was, in place of what was recorded."""

    follow_up: Ref


class VoidShift(Void):
    shift: Ref


class VoidReferral(Void):
    referral: Ref


CORRECTIONS: tuple[type[Command], ...] = (
    VoidCall,
    CorrectCall,
    VoidFollowUp,
    CorrectFollowUp,
    VoidShift,
    VoidReferral,
)


COMMANDS: dict[str, type[Command]] = {
    c.name(): c
    for c in (
        OpenHotlinePoint,
        ClosePoint,
        StartShift,
        EndShift,
        ReceiveCall,
        CompleteCall,
        ReferToAid,
        ReferToAids,
        ScheduleFollowUp,
        CompleteFollowUp,
        ReceiveCalls,
        ScheduleFollowUps,
        StartShifts,
        *CORRECTIONS,
    )
}
