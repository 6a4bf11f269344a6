"""The aid aggregates as stories: given these events, when this command, then these events
(or this refusal). Pure: no database, no NATS."""

from __future__ import annotations

from typing import Any

import pytest
from aid_stories import NANZHOU, VOLUNTEER, WEI_YI, WORKER, at
from harness.stories import given

from services.aid.domain import AidRequest, EmergencyCase, request_id_for_referral
from shared.contracts.aid import AidAssigned, AidCancelled, AidDelivered, AidRequested
from shared.contracts.hotline import ReferredToAid
from shared.contracts.types import AidItem
from shared.domain.aggregate import Aggregate
from shared.domain.errors import NotFound, RuleBroken

REQUEST = "request:1"

REQUESTED = AidRequested(
    request=REQUEST,
    person=WEI_YI,
    group="disabled",
    place=NANZHOU,
    needs=("medicine", "food"),
    urgency="today",
    origin="station_visit",
)
MEDICINE = AidItem.model_validate({"kind": "medicine", "quantity": "2", "unit": "box"})
VEGETABLES = AidItem.model_validate({"kind": "vegetables", "quantity": "1.5", "unit": "kg"})


def then(aggregate: Aggregate) -> list[tuple[str, dict[str, Any], int]]:
    return [
        (
            e.data.type_name(),
            e.data.model_dump(mode="json"),
            int((e.occurred_at - at(0)).total_seconds() // 60),
        )
        for e in aggregate.pending
    ]


def requested() -> AidRequest:
    return given(AidRequest, REQUEST, (REQUESTED, 0))


def test_a_station_opens_a_request_for_a_person_in_hardship() -> None:
    request = AidRequest.request(
        REQUEST, WEI_YI, "disabled", NANZHOU, ("medicine", "food"), "today", "station_visit", at(0)
    )
    assert then(request) == [("AidRequested", REQUESTED.model_dump(mode="json"), 0)]
    assert request.status == "requested"


def test_a_request_is_assigned_to_a_courier_and_may_be_handed_on() -> None:
    request = requested()
    request.assign(WORKER, at(10))
    request.assign(VOLUNTEER, at(20))
    assert [e[0] for e in then(request)] == ["AidAssigned", "AidAssigned"]
    assert request.assignee == VOLUNTEER and request.status == "assigned"
    with pytest.raises(RuleBroken) as refused:
        request.assign(VOLUNTEER, at(30))
    assert refused.value.rule == "assignment_changes_assignee"


def test_wei_yi_gets_medicine_and_vegetables_at_her_door() -> None:
    request = given(
        AidRequest, REQUEST, (REQUESTED, 0), (AidAssigned(request=REQUEST, assignee=WORKER), 10)
    )
    request.deliver("delivery:1", (MEDICINE, VEGETABLES), 1, at(90))
    [(kind, _, minute)] = then(request)
    assert (kind, minute) == ("AidDelivered", 90)
    delivered = request.pending[0].data
    assert isinstance(delivered, AidDelivered)
    # Every dimension a report needs, with no lookup:
    assert (delivered.person, delivered.group, delivered.place) == (WEI_YI, "disabled", NANZHOU)
    assert delivered.kinds == ("medicine", "vegetables")
    assert delivered.persons_served == 1
    assert request.status == "delivered"


def test_a_request_can_get_more_than_one_delivery() -> None:
    request = requested()
    request.deliver("delivery:1", (MEDICINE,), 1, at(90))
    request.deliver("delivery:2", (VEGETABLES,), 2, at(60 * 24 * 7))
    assert [e[0] for e in then(request)] == ["AidDelivered", "AidDelivered"]
    assert request.persons_served == 3
    assert [d["delivery"] for d in request.view()["deliveries"]] == ["delivery:1", "delivery:2"]


def test_nothing_is_delivered_on_a_cancelled_request() -> None:
    cancelled = AidCancelled(
        request=REQUEST, group="disabled", place=NANZHOU, reason="need_met_elsewhere"
    )
    request = given(AidRequest, REQUEST, (REQUESTED, 0), (cancelled, 30))
    with pytest.raises(RuleBroken) as no_delivery:
        request.deliver("delivery:1", (MEDICINE,), 1, at(90))
    with pytest.raises(RuleBroken) as no_assignment:
        request.assign(WORKER, at(90))
    with pytest.raises(RuleBroken) as not_twice:
        request.cancel("other", at(90))
    assert no_delivery.value.rule == "cancelled_request_gets_no_delivery"
    assert no_assignment.value.rule == "cancelled_request_is_not_assigned"
    assert not_twice.value.rule == "request_cancels_once"
    assert request.pending == [] and request.status == "cancelled"


def test_a_delivered_request_cannot_be_cancelled() -> None:
    delivered = AidDelivered(
        request=REQUEST,
        delivery="delivery:1",
        person=WEI_YI,
        group="disabled",
        place=NANZHOU,
        items=(MEDICINE,),
        persons_served=1,
    )
    request = given(AidRequest, REQUEST, (REQUESTED, 0), (delivered, 90))
    with pytest.raises(RuleBroken) as refused:
        request.cancel("person_declined", at(100))
    assert refused.value.rule == "delivered_request_cannot_be_cancelled"


def test_an_open_request_is_cancelled_with_its_reason() -> None:
    request = requested()
    request.cancel("person_unreachable", at(30))
    assert then(request) == [
        (
            "AidCancelled",
            {
                "request": REQUEST,
                "group": "disabled",
                "place": NANZHOU.model_dump(),
                "reason": "person_unreachable",
            },
            30,
        )
    ]


def test_nothing_happens_before_the_request_was_made() -> None:
    with pytest.raises(RuleBroken) as refused:
        requested().deliver("delivery:1", (MEDICINE,), 1, at(-5))
    assert refused.value.rule == "request_acted_on_after_requested"


def test_an_unknown_request_is_not_found() -> None:
    with pytest.raises(NotFound):
        AidRequest("request:nowhere").assign(WORKER, at(0))


def test_a_fall_opens_an_emergency_case_and_its_urgent_request() -> None:
    case, request = EmergencyCase.open(
        "emergency:1",
        "request:2",
        "fall",
        WEI_YI,
        "elderly_alone",
        NANZHOU,
        ("escort_to_hospital",),
        "residents_committee",
        at(5),
    )
    assert [e[0] for e in then(case)] == ["EmergencyCaseOpened"]
    assert then(case)[0][1]["request"] == "request:2"
    assert then(case)[0][1]["kind"] == "fall"
    assert request.urgency == "emergency" and request.status == "requested"
    assert request.pending[0].occurred_at == at(5)


def test_a_referral_opens_the_request_derived_from_it() -> None:
    referred = ReferredToAid(
        referral="referral:abc",
        call="call:1",
        point="point:nanzhou-1",
        person=WEI_YI,
        group="disabled",
        place=NANZHOU,
        needs=("medicine",),
        urgency="today",
    )
    request = AidRequest.from_referral(referred, at(10))
    again = AidRequest.from_referral(referred, at(10))
    assert request.id == again.id == request_id_for_referral("referral:abc")
    data = then(request)[0][1]
    assert data["origin"] == "hotline_referral" and data["referral"] == "referral:abc"
    assert request_id_for_referral("referral:abd") != request.id
