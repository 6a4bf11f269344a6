"""Every refusal on 卫姨's way, as the scenario and the services' READMEs tell it: the 南洲街
station takes her call, refers her to aid, a request opens from the referral, 唐丽 is assigned
it and brings medicine and vegetables to her door. Each story: given these events, when this
command, then this error, and no event recorded. Pure: the aggregates decide, nothing is
stored, so each story costs microseconds. Times are minutes after 09:00 on 2020-02-10 in
Guangzhou (`harness.stories`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from harness.stories import at, given
from pydantic import ValidationError

from services.aid.domain import AidRequest
from services.hotline.domain import Call, FollowUp, HotlinePoint, Referral, Shift
from shared.contracts.aid import AidAssigned, AidCancelled, AidDelivered, AidRequested
from shared.contracts.hotline import (
    CallCompleted,
    CallReceived,
    HotlinePointClosed,
    HotlinePointOpened,
    ReferredToAid,
    ShiftStarted,
)
from shared.contracts.refs import person_ref
from shared.contracts.types import AidItem, Place
from shared.domain.aggregate import Aggregate
from shared.domain.errors import DomainError, NotFound, RuleBroken

NANZHOU = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
POINT, CALL, REFERRAL, REQUEST = "point:nanzhou", "call:wei-yi", "referral:wei-yi", "request:w"
WEI_YI, TANG_LI = person_ref("weiyi"), "worker:tang-li"


def refused(when: Callable[[], object], *unchanged: Aggregate) -> DomainError:
    """The error ``when`` raises; and the aggregates it was given record nothing."""
    with pytest.raises(DomainError) as error:
        when()
    assert all(a.pending == [] for a in unchanged)
    return error.value


def rule(error: DomainError) -> str:
    assert isinstance(error, RuleBroken), error
    return error.rule


OPENED = (HotlinePointOpened(point=POINT, place=NANZHOU, site="station"), -60)
CLOSED = (HotlinePointClosed(point=POINT, place=NANZHOU, reason="service_ended"), 540)
RECEIVED = (
    CallReceived(
        call=CALL,
        point=POINT,
        place=NANZHOU,
        category="help_request",
        group="disabled",
        channel="phone",
        caller=WEI_YI,
    ),
    5,
)
COMPLETED = (
    CallCompleted(
        call=CALL,
        point=POINT,
        place=NANZHOU,
        category="help_request",
        group="disabled",
        outcome="referred_to_aid",
        duration_seconds=420,
    ),
    12,
)
REFERRED = ReferredToAid(
    referral=REFERRAL,
    call=CALL,
    point=POINT,
    person=WEI_YI,
    group="disabled",
    place=NANZHOU,
    needs=("medicine", "food"),
    urgency="today",
)
REQUESTED = (
    AidRequested(
        request=REQUEST,
        person=WEI_YI,
        group="disabled",
        place=NANZHOU,
        needs=("medicine", "food"),
        urgency="today",
        origin="hotline_referral",
        referral=REFERRAL,
    ),
    660,
)
MEDICINE = AidItem(kind="medicine", quantity=1, unit="box")
VEGETABLES = AidItem(kind="vegetables", quantity=2, unit="kg")
DELIVERED = (
    AidDelivered(
        request=REQUEST,
        delivery="delivery:w",
        person=WEI_YI,
        group="disabled",
        place=NANZHOU,
        items=(MEDICINE, VEGETABLES),
        persons_served=1,
    ),
    720,
)


# -- the hotline: her call at the 南洲街 station ----------------------------------------------


def test_her_call_is_not_taken_before_the_point_opened() -> None:
    point = given(HotlinePoint, POINT, OPENED)
    error = refused(
        lambda: Call.receive(CALL, point, "help_request", "disabled", "phone", WEI_YI, at(-120)),
        point,
    )
    assert rule(error) == "point_takes_calls_once_open"


def test_her_call_is_not_taken_after_the_point_closed_but_a_late_log_of_it_is() -> None:
    point = given(HotlinePoint, POINT, OPENED, CLOSED)
    error = refused(
        lambda: Call.receive(CALL, point, "help_request", "disabled", "phone", WEI_YI, at(600)),
        point,
    )
    assert rule(error) == "closed_point_takes_no_calls"
    late = Call.receive(CALL, point, "help_request", "disabled", "phone", WEI_YI, at(5))
    assert [e.data.type_name() for e in late.pending] == ["CallReceived"]


def test_the_point_does_not_close_before_her_call() -> None:
    point = given(HotlinePoint, POINT, OPENED)
    error = refused(lambda: point.close("service_ended", at(0), (CALL, at(5))), point)
    assert rule(error) == "point_closes_after_its_records"
    assert CALL in error.message


def test_her_call_completes_once_and_not_before_it_came_in() -> None:
    call = given(Call, CALL, RECEIVED)
    early = refused(lambda: call.complete("referred_to_aid", 420, at(0)), call)
    assert rule(early) == "call_completes_after_received"
    done = given(Call, CALL, RECEIVED, COMPLETED)
    again = refused(lambda: done.complete("advice_given", 60, at(60)), done)
    assert rule(again) == "call_completes_once"


def test_she_is_not_referred_before_her_call_nor_from_a_call_never_taken() -> None:
    call = given(Call, CALL, RECEIVED)
    early = refused(lambda: Referral.from_call(REFERRAL, call, ("medicine",), "today", at(0)), call)
    assert rule(early) == "referral_after_its_call"
    unknown = refused(
        lambda: Referral.from_call(REFERRAL, Call("call:never"), ("medicine",), "today", at(60))
    )
    assert isinstance(unknown, NotFound)


def test_an_anonymous_call_is_referred_only_naming_the_person() -> None:
    anonymous = RECEIVED[0].model_copy(update={"caller": None})
    call = given(Call, CALL, (anonymous, RECEIVED[1]))
    error = refused(lambda: Referral.from_call(REFERRAL, call, ("medicine",), "today", at(60)))
    assert rule(error) == "referral_names_a_person"


def test_her_daily_follow_up_is_for_her_group_and_due_after_it_is_planned() -> None:
    point = given(HotlinePoint, POINT, OPENED)
    general = refused(
        lambda: FollowUp.schedule(
            "follow-up:w", WEI_YI, "general", point, "emotional_support", at(480), at(0)
        )
    )
    assert rule(general) == "follow_ups_are_for_vulnerable_groups"
    past = refused(
        lambda: FollowUp.schedule(
            "follow-up:w", WEI_YI, "disabled", point, "emotional_support", at(-30), at(0)
        )
    )
    assert rule(past) == "follow_up_due_after_scheduled"


def test_tang_li_is_on_one_shift_at_a_time() -> None:
    point = given(HotlinePoint, POINT, OPENED)
    error = refused(lambda: Shift.start("shift:2", TANG_LI, point, at(240), "shift:1"), point)
    assert rule(error) == "one_open_shift_per_worker"
    on_duty = given(
        Shift,
        "shift:1",
        (ShiftStarted(shift="shift:1", worker=TANG_LI, point=POINT, place=NANZHOU), 0),
    )
    early = refused(lambda: on_duty.end(at(-60)), on_duty)
    assert rule(early) == "shift_ends_after_it_starts"


# -- aid: the request her referral opened, and the delivery at her door --------------------


def test_nothing_is_done_for_her_before_her_request_was_made() -> None:
    request = given(AidRequest, REQUEST, REQUESTED)
    error = refused(lambda: request.deliver("delivery:w", (MEDICINE,), 1, at(600)), request)
    assert rule(error) == "request_acted_on_after_requested"
    assert rule(refused(lambda: request.assign(TANG_LI, at(600)), request)) == (
        "request_acted_on_after_requested"
    )


def test_tang_li_is_assigned_once_and_a_cancelled_request_gets_nothing() -> None:
    assigned = given(
        AidRequest, REQUEST, REQUESTED, (AidAssigned(request=REQUEST, assignee=TANG_LI), 665)
    )
    again = refused(lambda: assigned.assign(TANG_LI, at(670)), assigned)
    assert rule(again) == "assignment_changes_assignee"
    cancelled = given(
        AidRequest,
        REQUEST,
        REQUESTED,
        (AidCancelled(request=REQUEST, group="disabled", place=NANZHOU, reason="other"), 665),
    )
    no_delivery = refused(
        lambda: cancelled.deliver("delivery:w", (MEDICINE,), 1, at(720)), cancelled
    )
    assert rule(no_delivery) == "cancelled_request_gets_no_delivery"
    no_courier = refused(lambda: cancelled.assign(TANG_LI, at(720)), cancelled)
    assert rule(no_courier) == "cancelled_request_is_not_assigned"
    not_twice = refused(lambda: cancelled.cancel("other", at(720)), cancelled)
    assert rule(not_twice) == "request_cancels_once"


def test_her_delivered_request_is_not_cancelled_afterwards() -> None:
    request = given(AidRequest, REQUEST, REQUESTED, DELIVERED)
    error = refused(lambda: request.cancel("need_met_elsewhere", at(780)), request)
    assert rule(error) == "delivered_request_cannot_be_cancelled"


def test_an_unknown_request_gets_no_delivery() -> None:
    error = refused(
        lambda: AidRequest("request:never").deliver("delivery:x", (MEDICINE,), 1, at(720))
    )
    assert isinstance(error, NotFound)


def test_an_escort_to_hospital_is_not_drawn_from_a_campaigns_stock() -> None:
    with pytest.raises(ValidationError, match="campaign"):
        AidItem(kind="escort", quantity=1, unit="trip", campaign="campaign:warm-lunch")


def test_her_follow_up_is_not_planned_from_her_call_before_it_came_in() -> None:
    point, call = given(HotlinePoint, POINT, OPENED), given(Call, CALL, RECEIVED)
    error = refused(
        lambda: FollowUp.schedule(
            "follow-up:w", WEI_YI, "disabled", point, "emotional_support", at(480), at(0), call
        ),
        point,
        call,
    )
    assert rule(error) == "follow_up_after_its_call"


def test_her_request_is_not_cancelled_before_tang_li_was_assigned_it() -> None:
    assigned = given(
        AidRequest, REQUEST, REQUESTED, (AidAssigned(request=REQUEST, assignee=TANG_LI), 700)
    )
    error = refused(lambda: assigned.cancel("need_met_elsewhere", at(680)), assigned)
    assert rule(error) == "request_cancels_after_its_records"
    assert TANG_LI in error.message


def test_an_assignment_logged_late_but_dated_before_the_cancellation_is_taken() -> None:
    cancelled = given(
        AidRequest,
        REQUEST,
        REQUESTED,
        (AidCancelled(request=REQUEST, group="disabled", place=NANZHOU, reason="other"), 700),
    )
    cancelled.assign(TANG_LI, at(680))
    assert [e.data.type_name() for e in cancelled.pending] == ["AidAssigned"]
    assert cancelled.status == "cancelled"
