"""Events of the hotline: the psychological protection net (抗疫心理防护网), 红棉守护热线.

The time an event happened (a call received, a shift started) is the envelope's
``occurred_at``; payloads carry only other times (when a follow-up is due), so the two can
never disagree. Every event that reporting counts carries its point and ``Place`` (district,
street, station, organisation), so the fold needs no lookup.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from shared.contracts.corrections import Recorded, Voiding
from shared.contracts.envelope import Event
from shared.contracts.registry import event
from shared.contracts.types import (
    CallSeconds,
    Group,
    Needs,
    Place,
    Ref,
    ShiftMinutes,
    Urgency,
    VulnerableGroup,
)

Category = Literal[
    "psychological_counselling",  # 心理辅导
    "emotional_support",  # 情绪疏导
    "epidemic_consultation",  # 防疫咨询
    "help_request",  # 求助
]
PointSite = Literal["station", "project_site"]
Channel = Literal["phone", "online"]
FollowUpChannel = Literal["phone", "online", "home_visit"]
CallOutcome = Literal[
    "advice_given",
    "follow_up_scheduled",
    "referred_to_aid",
    "referred_elsewhere",
    "caller_hung_up",
]
PointClosure = Literal["service_ended", "merged", "relocated", "other"]


class HotlineEvent(Event):
    source = "hotline"


@event
class HotlinePointOpened(HotlineEvent):
    """A hotline point (热线服务点) opened at a social-work station or a project site."""

    point: Ref
    place: Place
    site: PointSite


@event
class HotlinePointClosed(HotlineEvent):
    """A hotline point closed: it takes no more shifts or calls."""

    point: Ref
    place: Place
    reason: PointClosure


@event
class ShiftStarted(HotlineEvent):
    """A social worker went on duty at a point: one 接线服务社工人次."""

    shift: Ref
    worker: Ref
    point: Ref
    place: Place


@event
class ShiftEnded(HotlineEvent):
    """A social worker's shift on the line ended."""

    shift: Ref
    worker: Ref
    point: Ref
    place: Place
    minutes_on_duty: ShiftMinutes


@event
class CallReceived(HotlineEvent):
    """A call taken at a point: one service given (服务人次). ``caller`` is absent when the
    caller stayed anonymous."""

    call: Ref
    point: Ref
    place: Place
    category: Category
    group: Group
    channel: Channel
    caller: Ref | None = None


@event
class CallCompleted(HotlineEvent):
    """A call ended, with what came of it."""

    call: Ref
    point: Ref
    place: Place
    category: Category
    group: Group
    outcome: CallOutcome
    duration_seconds: CallSeconds


@event
class FollowUpScheduled(HotlineEvent):
    """A tracked follow-up (跟踪服务) planned for a person in a vulnerable group."""

    follow_up: Ref
    person: Ref
    group: VulnerableGroup
    point: Ref
    place: Place
    category: Category
    due_at: AwareDatetime
    call: Ref | None = None


@event
class FollowUpCompleted(HotlineEvent):
    """A tracked follow-up given: one service given and one tracked service."""

    follow_up: Ref
    person: Ref
    group: VulnerableGroup
    point: Ref
    place: Place
    category: Category
    channel: FollowUpChannel


@event
class ReferredToAid(HotlineEvent):
    """From a call, a person referred to the rescue net (转介援助). ``place`` is where the
    person lives (the station that will serve them), which the aid request inherits."""

    referral: Ref
    call: Ref
    point: Ref
    person: Ref
    group: Group
    place: Place
    needs: Needs
    urgency: Urgency


# -- corrections (shared/contracts/corrections.py): a fact voided, or voided and recorded again

CallRecords = tuple[Recorded[CallReceived] | Recorded[CallCompleted], ...]
FollowUpRecords = tuple[Recorded[FollowUpScheduled] | Recorded[FollowUpCompleted], ...]
ShiftRecords = tuple[Recorded[ShiftStarted] | Recorded[ShiftEnded], ...]
ReferralRecords = tuple[Recorded[ReferredToAid], ...]


@event
class CallVoided(HotlineEvent, Voiding):
    """A call recorded by mistake (logged twice, never happened) taken out of the figures,
    or, with a ``replacement``, recorded again as it really was."""

    fact_field = "call"
    call: Ref
    voided: CallRecords = Field(min_length=1, max_length=2)
    replacement: CallRecords = Field(default=(), max_length=2)


@event
class FollowUpVoided(HotlineEvent, Voiding):
    """A tracked follow-up recorded by mistake, taken out or recorded again."""

    fact_field = "follow_up"
    follow_up: Ref
    voided: FollowUpRecords = Field(min_length=1, max_length=2)
    replacement: FollowUpRecords = Field(default=(), max_length=2)


@event
class ShiftVoided(HotlineEvent, Voiding):
    """A shift recorded by mistake, taken out or recorded again."""

    fact_field = "shift"
    shift: Ref
    voided: ShiftRecords = Field(min_length=1, max_length=2)
    replacement: ShiftRecords = Field(default=(), max_length=2)


@event
class ReferralVoided(HotlineEvent, Voiding):
    """A referral to aid recorded by mistake, taken out of the figures or recorded again.
    The aid request it opened is the aid service's: cancel it there if it is not to be
    served."""

    fact_field = "referral"
    referral: Ref
    voided: ReferralRecords = Field(min_length=1, max_length=1)
    replacement: ReferralRecords = Field(default=(), max_length=1)
