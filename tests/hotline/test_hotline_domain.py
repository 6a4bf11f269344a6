"""The aggregates as stories: given these events, when this command, then these events (or
this refusal). Pure: no database, no NATS."""

from __future__ import annotations

from typing import Any, TypeVar

import pytest
from hotline_stories import NANZHOU, WEI_YI, WORKER, at

from services.hotline.domain import Call, FollowUp, HotlinePoint, Referral, Shift
from services.hotline.domain.shift import ShiftsOverlap
from shared.contracts.envelope import Event
from shared.contracts.hotline import (
    CallCompleted,
    CallReceived,
    FollowUpCompleted,
    FollowUpScheduled,
    HotlinePointClosed,
    HotlinePointOpened,
    ReferredToAid,
    ShiftEnded,
    ShiftStarted,
)
from shared.domain.aggregate import Aggregate
from shared.domain.errors import NotFound, RuleBroken

POINT = "point:nanzhou-1"
A = TypeVar("A", bound=Aggregate)


def given(kind: type[A], id: str, *events: tuple[Event, int]) -> A:
    """An aggregate rebuilt from (event, minutes after 09:00) pairs, as the store would."""
    aggregate = kind(id)
    for version, (data, minute) in enumerate(events, start=1):
        aggregate.apply(data, at(minute))
        aggregate.version = version
    return aggregate


def then(aggregate: Aggregate) -> list[tuple[str, dict[str, Any], int]]:
    return [
        (
            e.data.type_name(),
            e.data.model_dump(mode="json"),
            int((e.occurred_at - at(0)).total_seconds() // 60),
        )
        for e in aggregate.pending
    ]


OPENED = HotlinePointOpened(point=POINT, place=NANZHOU, site="station")
CLOSED = HotlinePointClosed(point=POINT, place=NANZHOU, reason="service_ended")
RECEIVED = CallReceived(
    call="call:1",
    point=POINT,
    place=NANZHOU,
    category="help_request",
    group="disabled",
    channel="phone",
    caller=WEI_YI,
)


def open_point() -> HotlinePoint:
    return given(HotlinePoint, POINT, (OPENED, 0))


# -- HotlinePoint --------------------------------------------------------------------------


def test_a_point_opens_at_a_station() -> None:
    point = HotlinePoint.open(POINT, NANZHOU, "station", at(0))
    assert then(point) == [("HotlinePointOpened", OPENED.model_dump(mode="json"), 0)]
    assert point.is_open


def test_an_open_point_closes_once() -> None:
    point = open_point()
    point.close("service_ended", at(600))
    assert then(point) == [("HotlinePointClosed", CLOSED.model_dump(mode="json"), 600)]
    with pytest.raises(RuleBroken) as refused:
        point.close("service_ended", at(601))
    assert refused.value.rule == "point_closes_once"


def test_a_closed_point_takes_no_shifts_and_no_calls() -> None:
    point = given(HotlinePoint, POINT, (OPENED, 0), (CLOSED, 600))
    with pytest.raises(RuleBroken) as no_shift:
        Shift.start("shift:1", WORKER, point, at(610), open_shift=None)
    with pytest.raises(RuleBroken) as no_call:
        Call.receive("call:1", point, "help_request", "disabled", "phone", WEI_YI, at(610))
    assert no_shift.value.rule == "closed_point_takes_no_shifts"
    assert no_call.value.rule == "closed_point_takes_no_calls"


def test_an_unknown_point_is_not_found() -> None:
    with pytest.raises(NotFound):
        Call.receive(
            "call:1", HotlinePoint("point:x"), "help_request", "child", "phone", None, at(0)
        )


def test_nothing_happens_at_a_point_before_it_opened() -> None:
    with pytest.raises(RuleBroken) as refused:
        Call.receive("call:1", open_point(), "help_request", "child", "phone", None, at(-5))
    assert refused.value.rule == "point_takes_calls_once_open"


# -- Shift ---------------------------------------------------------------------------------


def test_a_worker_goes_on_duty_and_off_again() -> None:
    shift = Shift.start("shift:1", WORKER, open_point(), at(0), open_shift=None)
    shift.end(at(240))
    started = {"shift": "shift:1", "worker": WORKER, "point": POINT, "place": NANZHOU.model_dump()}
    assert then(shift) == [
        ("ShiftStarted", started, 0),
        ("ShiftEnded", {**started, "minutes_on_duty": 240}, 240),
    ]


def test_a_worker_has_one_open_shift() -> None:
    with pytest.raises(RuleBroken) as refused:
        Shift.start("shift:2", WORKER, open_point(), at(10), open_shift="shift:1")
    assert refused.value.rule == "one_open_shift_per_worker"


def test_ending_a_shift_twice_is_refused() -> None:
    started = ShiftStarted(shift="shift:1", worker=WORKER, point=POINT, place=NANZHOU)
    ended = ShiftEnded(
        shift="shift:1", worker=WORKER, point=POINT, place=NANZHOU, minutes_on_duty=240
    )
    shift = given(Shift, "shift:1", (started, 0), (ended, 240))
    with pytest.raises(RuleBroken) as refused:
        shift.end(at(300))
    assert refused.value.rule == "shift_ends_once"
    assert shift.pending == []


def test_a_shift_cannot_end_before_it_started() -> None:
    shift = Shift.start("shift:1", WORKER, open_point(), at(60), open_shift=None)
    with pytest.raises(RuleBroken) as refused:
        shift.end(at(30))
    assert refused.value.rule == "shift_ends_after_it_starts"


# -- a day's shifts: one worker, one shift at a time -----------------------------------------


def logged_shift(id: str, worker: str, start: int, end: int | None) -> Shift:
    """A shift as a day's log has it: started and, if over, ended (minutes after 09:00)."""
    shift = Shift.start(id, worker, open_point(), at(start), open_shift=None)
    if end is not None:
        shift.end(at(end))
    return shift


def test_a_workers_shifts_back_to_back_do_not_overlap() -> None:
    shifts = [
        logged_shift("shift:1", WORKER, 0, 240),
        logged_shift("shift:2", "worker:w18", 60, 300),
        logged_shift("shift:3", WORKER, 240, 480),  # starts as the first ends
        logged_shift("shift:4", WORKER, 600, None),  # and on duty again in the evening
    ]
    Shift.refuse_overlaps(shifts)  # nothing refused


def test_two_shifts_of_a_worker_that_overlap_are_refused_naming_the_later_listed() -> None:
    shifts = [
        logged_shift("shift:1", WORKER, 120, 360),
        logged_shift("shift:2", "worker:w18", 0, 480),
        logged_shift("shift:3", WORKER, 0, 180),  # listed later, started earlier
    ]
    with pytest.raises(ShiftsOverlap) as refused:
        Shift.refuse_overlaps(shifts)
    assert refused.value.rule == "shifts_of_a_worker_do_not_overlap"
    assert (refused.value.earlier, refused.value.later) == (0, 2)
    assert WORKER in refused.value.message and "listed at 0" in refused.value.message


def test_a_shift_still_open_overlaps_every_later_shift_of_its_worker() -> None:
    shifts = [
        logged_shift("shift:1", WORKER, 0, None),
        logged_shift("shift:2", WORKER, 600, 660),
    ]
    with pytest.raises(ShiftsOverlap) as refused:
        Shift.refuse_overlaps(shifts)
    assert (refused.value.earlier, refused.value.later) == (0, 1)


def test_a_logged_shift_overlapping_the_shift_the_worker_is_on_now_is_refused() -> None:
    on_duty = given(
        Shift,
        "shift:9",
        (ShiftStarted(shift="shift:9", worker=WORKER, point=POINT, place=NANZHOU), 300),
    )
    before = logged_shift("shift:1", WORKER, 0, 300)  # ends as the open one starts: fine
    Shift.refuse_overlaps([before], on_duty=[on_duty])
    during = logged_shift("shift:2", WORKER, 320, 360)
    with pytest.raises(ShiftsOverlap) as refused:
        Shift.refuse_overlaps([before, during], on_duty=[on_duty])
    assert refused.value.later == 1 and refused.value.earlier is None
    assert "shift:9" in refused.value.message


# -- Call and Referral: 卫姨's story --------------------------------------------------------


def test_wei_yi_calls_and_is_referred_to_aid() -> None:
    """卫姨 phones her station; the worker learns she needs medicine she cannot fetch, refers
    her to aid for medicine and food, and completes the call."""
    call = Call.receive("call:1", open_point(), "help_request", "disabled", "phone", WEI_YI, at(5))
    referral = Referral.from_call("referral:1", call, ("medicine", "food"), "today", at(10))
    call.complete("referred_to_aid", 420, at(12))
    assert then(call) == [
        ("CallReceived", RECEIVED.model_dump(mode="json"), 5),
        (
            "CallCompleted",
            CallCompleted(
                call="call:1",
                point=POINT,
                place=NANZHOU,
                category="help_request",
                group="disabled",
                outcome="referred_to_aid",
                duration_seconds=420,
            ).model_dump(mode="json"),
            12,
        ),
    ]
    referred = ReferredToAid(
        referral="referral:1",
        call="call:1",
        point=POINT,
        person=WEI_YI,
        group="disabled",
        place=NANZHOU,
        needs=("medicine", "food"),
        urgency="today",
    )
    assert then(referral) == [("ReferredToAid", referred.model_dump(mode="json"), 10)]


def test_a_call_completes_once() -> None:
    call = given(Call, "call:1", (RECEIVED, 5))
    call.complete("advice_given", 60, at(7))
    with pytest.raises(RuleBroken) as refused:
        call.complete("advice_given", 60, at(8))
    assert refused.value.rule == "call_completes_once"


def test_an_anonymous_call_is_referred_only_with_a_person_named() -> None:
    anonymous = given(Call, "call:1", (RECEIVED.model_copy(update={"caller": None}), 5))
    with pytest.raises(RuleBroken) as refused:
        Referral.from_call("referral:1", anonymous, ("masks",), "within_days", at(6))
    assert refused.value.rule == "referral_names_a_person"
    referral = Referral.from_call(
        "referral:1", anonymous, ("masks",), "within_days", at(6), person="person:a1"
    )
    assert referral.person == "person:a1"


def test_a_referral_needs_a_received_call() -> None:
    with pytest.raises(NotFound):
        Referral.from_call("referral:1", Call("call:9"), ("food",), "today", at(6))


# -- FollowUp ------------------------------------------------------------------------------


def test_a_tracked_follow_up_is_scheduled_and_completed() -> None:
    follow_up = FollowUp.schedule(
        "follow-up:1", WEI_YI, "disabled", open_point(), "emotional_support", at(1440), at(15)
    )
    follow_up.complete("phone", at(1450))
    common = {
        "follow_up": "follow-up:1",
        "person": WEI_YI,
        "group": "disabled",
        "point": POINT,
        "place": NANZHOU.model_dump(),
        "category": "emotional_support",
    }
    assert then(follow_up) == [
        ("FollowUpScheduled", {**common, "due_at": at(1440).isoformat(), "call": None}, 15),
        ("FollowUpCompleted", {**common, "channel": "phone"}, 1450),
    ]
    assert isinstance(follow_up.pending[0].data, FollowUpScheduled)
    assert isinstance(follow_up.pending[1].data, FollowUpCompleted)


def test_follow_ups_are_for_vulnerable_groups_only() -> None:
    with pytest.raises(RuleBroken) as refused:
        FollowUp.schedule(
            "follow-up:1", "person:b2", "general", open_point(), "emotional_support", at(60), at(1)
        )
    assert refused.value.rule == "follow_ups_are_for_vulnerable_groups"


def test_a_follow_up_completes_once() -> None:
    follow_up = FollowUp.schedule(
        "follow-up:1", WEI_YI, "disabled", open_point(), "emotional_support", at(60), at(1)
    )
    follow_up.complete("home_visit", at(70))
    with pytest.raises(RuleBroken) as refused:
        follow_up.complete("home_visit", at(80))
    assert refused.value.rule == "follow_up_completes_once"
