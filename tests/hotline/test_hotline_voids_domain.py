"""Voids as the aggregates decide them (shared/domain/voids.py), told as stories: given a
call's events, when it is voided or corrected, then this event, or this refusal. Pure."""

from __future__ import annotations

import pytest
from hotline_stories import NANZHOU, at

from services.hotline.domain import Call, HotlinePoint
from shared.contracts.envelope import Event
from shared.contracts.hotline import CallCompleted, CallReceived, CallVoided, HotlinePointOpened
from shared.domain.errors import NotFound, RuleBroken
from shared.domain.voids import VOIDS_ONCE, void

POINT = "point:nanzhou-1"
AT_NANZHOU = {"call": "call:1", "point": POINT, "place": NANZHOU, "group": "disabled"}
RECEIVED = CallReceived(**AT_NANZHOU, category="help_request", channel="phone")
COMPLETED = CallCompleted(
    **AT_NANZHOU, category="help_request", outcome="advice_given", duration_seconds=60
)


def a_call(*events: tuple[Event, int]) -> Call:
    """The call as its stored events rebuild it (minutes after 09:00)."""
    call = Call("call:1")
    for version, (data, minute) in enumerate(events, start=1):
        call.apply_stored(data, at(minute))
        call.version = version
    return call


def everything(_: Event) -> bool:
    return True


def test_a_void_carries_the_events_it_takes_out_and_the_call_takes_no_more() -> None:
    call = a_call((RECEIVED, 5), (COMPLETED, 6))

    void(call, CallVoided, call.id, everything, "logged twice", at(60))

    (new,) = call.pending
    assert isinstance(new.data, CallVoided) and new.occurred_at == at(60)
    assert [(r.event, r.at) for r in new.data.voided] == [(RECEIVED, at(5)), (COMPLETED, at(6))]
    assert call.voided == {"call:1": "logged twice"} and call.received_at is None
    with pytest.raises(RuleBroken) as again:
        void(call, CallVoided, call.id, everything, "logged twice", at(61))
    assert again.value.rule == VOIDS_ONCE
    with pytest.raises(RuleBroken):
        call.complete("advice_given", 1, at(62))


def test_a_correction_restates_the_call_as_it_really_was() -> None:
    call = a_call((RECEIVED, 5))
    point = HotlinePoint.rebuild(POINT, [])
    point.apply_stored(HotlinePointOpened(point=POINT, place=NANZHOU, site="station"), at(0))
    point.version = 1
    again = Call.receive("call:1", point, "emotional_support", "disabled", "phone", None, at(20))

    void(call, CallVoided, call.id, everything, "wrong category", at(60), again.pending)

    assert (call.category, call.received_at, call.voided) == ("emotional_support", at(20), {})
    # what stands now is the replacement: a second void takes it out
    void(call, CallVoided, call.id, everything, "never happened", at(70))
    assert call.pending[-1].data.voided[0].event.category == "emotional_support"


def test_nothing_is_voided_before_it_happened_or_if_it_never_was() -> None:
    with pytest.raises(RuleBroken) as early:
        void(a_call((RECEIVED, 5)), CallVoided, "call:1", everything, "x", at(4))
    assert early.value.rule == "void_follows_its_fact"
    with pytest.raises(NotFound):
        void(Call("call:2"), CallVoided, "call:2", everything, "x", at(4))
