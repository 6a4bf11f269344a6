"""Events of the hotline: the psychological protection net (抗疫心理防护网), 红棉守护热线.

The time an event happened (a call received, a shift started) is the envelope's
``occurred_at``; payloads carry only other times (when a follow-up is due), so the two can
never disagree. Every event that reporting counts carries its point and ``Place`` (district,
street, station, organisation), so the fold needs no lookup.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime

from shared.contracts.envelope import Event
from shared.contracts.registry import event
from shared.contracts.types import Count, Group, Needs, Place, Ref, Urgency, VulnerableGroup

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
    minutes_on_duty: Count


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
    duration_seconds: Count


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
