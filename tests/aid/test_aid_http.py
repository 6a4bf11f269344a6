"""The aid HTTP API on real parts (both databases, the session's nats-server): commands as
POSTs, current state as GETs, the error shapes, Idempotency-Key, all-or-nothing batches, and
the events that reach the AID stream."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aid_parts import Aid
from aid_stories import MEDICINE, NANZHOU, VEGETABLES, WEI_YI, WORKER, at, delivery_body, place
from aid_stories import request_body as body

from shared.contracts.refs import person_ref

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def open_request(aid: Aid, **changes: Any) -> str:
    response = await aid.post("/requests", body(**changes))
    assert response.status_code == 201, response.text
    return str(response.json()["request"])


async def test_a_request_is_assigned_and_delivered_and_its_events_reach_the_stream(
    aid: Aid,
) -> None:
    request = await open_request(aid)
    assigned = await aid.post(
        f"/requests/{request}/assign",
        {"assignee": WORKER, "assigned_at": at(10).isoformat()},
        **aid.as_actor("worker:lead"),
    )
    assert assigned.status_code == 200, assigned.text
    delivered = await aid.post(
        f"/requests/{request}/deliveries", delivery_body(), **aid.as_actor(WORKER)
    )
    assert delivered.status_code == 201, delivered.text
    assert delivered.json()["delivery"].startswith("delivery:")

    state = (await aid.http.get(f"/requests/{request}")).json()
    assert state["status"] == "delivered" and state["assignee"] == WORKER
    assert state["persons_served"] == 1 and state["version"] == 3
    assert state["deliveries"][0]["kinds"] == ["medicine", "vegetables"]

    events = await aid.published()
    assert [e["type"] for e in events] == ["AidRequested", "AidAssigned", "AidDelivered"]
    assert {e["stream_id"] for e in events} == {request}
    opener, *changers = [e["actor"] for e in events]
    assert opener.startswith("user:") and changers == ["worker:lead", WORKER]
    assert len({e["correlation_id"] for e in events}) == 1  # one flow, request to door
    data = events[-1]["data"]
    assert (data["person"], data["group"], data["place"]) == (WEI_YI, "disabled", place())
    assert data["items"][0] == {**MEDICINE, "campaign": None}
    assert data["items"][1] == {**VEGETABLES, "value_yuan": None, "campaign": None}
    assert data["persons_served"] == 1
    assert events[-1]["occurred_at"] == at(90).isoformat()


async def test_a_request_gets_a_second_delivery(aid: Aid) -> None:
    request = await open_request(aid)
    for minute in (90, 600):
        response = await aid.post(f"/requests/{request}/deliveries", delivery_body(minute))
        assert response.status_code == 201, response.text
    state = (await aid.http.get(f"/requests/{request}")).json()
    assert len(state["deliveries"]) == 2 and state["persons_served"] == 2


async def test_cancelled_and_delivered_requests_keep_their_rules(aid: Aid) -> None:
    cancelled = await open_request(aid)
    response = await aid.post(
        f"/requests/{cancelled}/cancel",
        {"reason": "need_met_elsewhere", "cancelled_at": at(30).isoformat()},
    )
    assert response.status_code == 200, response.text
    refused = await aid.post(f"/requests/{cancelled}/deliveries", delivery_body())
    assert refused.status_code == 409
    assert refused.json()["rule"] == "cancelled_request_gets_no_delivery"

    delivered = await open_request(aid)
    await aid.post(f"/requests/{delivered}/deliveries", delivery_body())
    refused = await aid.post(
        f"/requests/{delivered}/cancel",
        {"reason": "other", "cancelled_at": at(100).isoformat()},
    )
    assert refused.status_code == 409
    assert refused.json() == {
        "status": 409,
        "error": f"{delivered} has had a delivery: it cannot be cancelled",
        "rule": "delivered_request_cannot_be_cancelled",
    }
    assert await aid.stored() == 4  # requested x2, cancelled, delivered: nothing on refusals


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"group": "rich"}, "group"),
        ({"requested_at": "2020-02-10T09:00:00"}, "requested_at"),
        ({"requested_at": "2999-01-01T00:00:00+08:00"}, "requested_at"),
        ({"needs": []}, "needs"),
        ({"origin": "hotline_referral"}, "origin"),
        ({"name": "卫姨"}, "name"),
        ({"person": "Wei Yi, 13800000000"}, "person"),
    ],
    ids=["group", "naive", "future", "no-needs", "referral-origin", "unknown-field", "pii"],
)
async def test_invalid_input_is_refused_naming_the_field(
    aid: Aid, changes: dict[str, Any], field: str
) -> None:
    response = await aid.post("/requests", body(**changes))
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert await aid.stored() == 0


@pytest.mark.parametrize(
    ("delivery", "field"),
    [
        ({"persons_served": 0}, "persons_served"),
        ({"items": []}, "items"),
        ({"items": [{**MEDICINE, "quantity": 1.5}]}, "items.0.quantity"),
        ({"items": [{**MEDICINE, "value_yuan": 56.5}]}, "items.0.value_yuan"),
        (
            {
                "items": [
                    {"kind": "escort", "quantity": "1", "unit": "trip", "campaign": "campaign:x"}
                ]
            },
            "items.0.campaign",
        ),
        ({"request": "request:other"}, "request"),
    ],
    ids=[
        "nobody-served",
        "no-items",
        "float-qty",
        "float-money",
        "escort-campaign",
        "request-in-body",
    ],
)
async def test_a_bad_delivery_is_refused_and_nothing_is_stored(
    aid: Aid, delivery: dict[str, Any], field: str
) -> None:
    request = await open_request(aid)
    response = await aid.post(f"/requests/{request}/deliveries", delivery_body(**delivery))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert await aid.stored() == 1


async def test_a_delivery_dated_before_its_request_is_refused_by_the_rule(aid: Aid) -> None:
    request = await open_request(aid)
    early = delivery_body(delivered_at=at(-30).isoformat())
    response = await aid.post(f"/requests/{request}/deliveries", early)
    assert response.status_code == 409, response.text
    assert response.json()["rule"] == "request_acted_on_after_requested"
    assert await aid.stored() == 1


async def test_unknown_requests_are_404(aid: Aid) -> None:
    for path in ("/requests/request:nowhere", "/emergencies/emergency:nowhere"):
        response = await aid.http.get(path)
        assert response.status_code == 404
        assert response.json()["resource"] == path.rsplit("/", 1)[1]
    response = await aid.post("/requests/request:nowhere/deliveries", delivery_body())
    assert (response.status_code, response.json()["resource"]) == (404, "request:nowhere")


async def test_a_retried_request_returns_the_first_response_and_appends_nothing(
    aid: Aid,
) -> None:
    first = await aid.post("/requests", body(), key="visit-1")
    again = await aid.post("/requests", body(), key="visit-1")
    assert first.status_code == again.status_code == 201
    assert first.content == again.content
    other = await aid.post("/requests", body(urgency="emergency"), key="visit-1")
    assert (other.status_code, other.json()["field"]) == (422, "Idempotency-Key")
    request = first.json()["request"]
    # A cancellation retried after it succeeded: the answer, not "already cancelled".
    cancel = {"reason": "person_declined", "cancelled_at": at(5).isoformat()}
    one = await aid.post(f"/requests/{request}/cancel", cancel, key="cancel-1")
    two = await aid.post(f"/requests/{request}/cancel", cancel, key="cancel-1")
    assert one.status_code == two.status_code == 200 and one.content == two.content
    assert await aid.stored() == 2


async def test_concurrent_retries_with_one_key_store_once(aid: Aid) -> None:
    request = await open_request(aid)
    responses = await asyncio.gather(
        *(aid.post(f"/requests/{request}/deliveries", delivery_body(), key="d-1") for _ in range(8))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert await aid.stored() == 2


async def test_concurrent_deliveries_to_one_request_all_land(aid: Aid) -> None:
    """Each decides on the version it loaded; a stale one decides again on fresh state."""
    request = await open_request(aid)
    responses = await asyncio.gather(
        *(aid.post(f"/requests/{request}/deliveries", delivery_body(90 + i)) for i in range(6))
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}
    assert statuses.count(201) >= 1
    for r in responses:
        if r.status_code == 409:
            assert r.json()["rule"] == "concurrency_conflict"
    state = (await aid.http.get(f"/requests/{request}")).json()
    assert len(state["deliveries"]) == statuses.count(201)
    assert await aid.stored() == 1 + statuses.count(201)


async def test_an_emergency_opens_its_case_and_an_urgent_request(aid: Aid) -> None:
    response = await aid.post(
        "/emergencies",
        {
            "kind": "fall",
            "person": person_ref("old-li"),
            "group": "elderly_alone",
            "place": place(),
            "opened_at": at(3).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    case = response.json()
    request = (await aid.http.get(f"/requests/{case['request']}")).json()
    assert (request["urgency"], request["needs"]) == ("emergency", ["escort_to_hospital"])
    assert (await aid.http.get(f"/emergencies/{case['emergency']}")).json()["kind"] == "fall"
    events = await aid.published()
    assert sorted(e["type"] for e in events) == ["AidRequested", "EmergencyCaseOpened"]
    assert len({e["correlation_id"] for e in events}) == 1  # one decision, one transaction


async def test_a_days_deliveries_in_one_batch_all_or_nothing(aid: Aid) -> None:
    first, second = await open_request(aid), await open_request(aid)
    items = [{"request": first, **delivery_body(60 + i)} for i in range(3)]
    items.append({"request": second, **delivery_body(70)})
    items.append({"request": "request:nowhere", **delivery_body(70)})
    refused = await aid.post("/deliveries:batch", {"items": items})
    assert refused.status_code == 404 and "items.4" in refused.json()["error"]
    assert await aid.stored() == 2

    items[4] = {"request": second, **delivery_body(80)}
    done = await aid.post("/deliveries:batch", {"items": items})
    assert done.status_code == 201, done.text
    assert done.json()["count"] == 5
    assert (await aid.http.get(f"/requests/{first}")).json()["persons_served"] == 3
    assert len([e for e in await aid.published() if e["type"] == "AidDelivered"]) == 5

    too_many = await aid.post("/deliveries:batch", {"items": [items[0]] * 5001})
    assert (too_many.status_code, too_many.json()["field"]) == (422, "items")
    empty = await aid.post("/deliveries:batch", {"items": []})
    assert (empty.status_code, empty.json()["field"]) == (422, "items")


async def test_a_days_requests_and_their_assignments_in_batches_all_or_nothing(
    aid: Aid,
) -> None:
    stored = await aid.stored()
    asked = [body(minute=m, person=person_ref(f"p{m}")) for m in range(3)]
    refused = await aid.post("/requests:batch", {"items": [*asked, body(needs=["gold"])]})
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"].startswith("items.3.needs")
    assert await aid.stored() == stored

    opened = await aid.post("/requests:batch", {"items": asked})
    assert (opened.status_code, opened.json()["count"]) == (201, 3), opened.text
    first, second, third = opened.json()["requests"]
    assert (await aid.http.get(f"/requests/{second}")).json()["person"] == person_ref("p1")

    def assignment(request: str, who: str = WORKER, minute: int = 10) -> dict[str, str]:
        return {"request": request, "assignee": who, "assigned_at": at(minute).isoformat()}

    # The same request twice in one batch: the second is decided on the first's state.
    twice = [assignment(first), assignment(second), assignment(first)]
    broken = await aid.post("/assignments:batch", {"items": twice})
    assert broken.status_code == 409 and "items.2" in broken.json()["error"], broken.text
    assert await aid.stored() == stored + 3

    handed_on = [assignment(first), assignment(second), assignment(first, "volunteer:v3", 20)]
    done = await aid.post("/assignments:batch", {"items": [*handed_on, assignment(third)]})
    assert (done.status_code, done.json()["count"]) == (200, 4), done.text
    assert (await aid.http.get(f"/requests/{first}")).json()["assignee"] == "volunteer:v3"
    assert (await aid.http.get(f"/requests/{third}")).json()["status"] == "assigned"
    events = (await aid.published())[-7:]
    assert [e["type"] for e in events] == ["AidRequested"] * 3 + ["AidAssigned"] * 4
    assert len({e["correlation_id"] for e in events[3:]}) == 1  # one decision

    unknown = await aid.post("/assignments:batch", {"items": [assignment("request:nowhere")]})
    assert unknown.status_code == 404 and "items.0" in unknown.json()["error"]


async def test_the_openapi_document_names_every_route_and_the_error_shape(aid: Aid) -> None:
    document = (await aid.http.get("/openapi.json")).json()
    assert set(document["paths"]) == {
        "/requests",
        "/requests:batch",
        "/requests/{request}/assign",
        "/assignments:batch",
        "/requests/{request}/deliveries",
        "/requests/{request}/cancel",
        "/deliveries:batch",
        "/emergencies",
        "/requests/{id}",
        "/emergencies/{id}",
        "/referrals/{referral}/request",
        "/deliveries/{delivery}/void",
        "/deliveries/{delivery}/correct",
    }
    schemas = document["components"]["schemas"]
    assert "request" not in schemas["RecordDeliveryBody"]["properties"]
    assert schemas["Error"]["required"] == ["status", "error"]
    assert NANZHOU.district == "haizhu"
