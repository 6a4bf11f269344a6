"""A delivery recorded by mistake, on real parts: given 卫姨's request delivered, when the
delivery is voided or corrected over HTTP or NATS, then the void is one more event on the
request's stream, the request is open again if nothing else reached her door, and voiding
twice (409) or voiding what was never recorded (404) stores nothing."""

from __future__ import annotations

import pytest
from aid_parts import Aid
from aid_stories import MEDICINE, at, delivery_body, request_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def given_a_delivery(aid: Aid) -> tuple[str, str]:
    request = (await aid.post("/requests", request_body())).json()["request"]
    delivered = await aid.post(f"/requests/{request}/deliveries", delivery_body())
    assert delivered.status_code == 201, delivered.text
    return request, str(delivered.json()["delivery"])


async def test_a_delivery_to_the_wrong_door_is_voided_and_the_request_is_open_again(
    aid: Aid,
) -> None:
    request, delivery = await given_a_delivery(aid)

    voided = await aid.post(
        f"/deliveries/{delivery}/void",
        {"request": request, "reason": "wrong door"},
        **aid.as_actor("worker:lead"),
    )

    assert voided.status_code == 200, voided.text
    assert voided.json()["status"] == "requested" and voided.json()["deliveries"] == []
    events = [e for e in await aid.published() if e["stream_id"] == request]
    assert [e["type"] for e in events] == ["AidRequested", "AidDelivered", "AidDeliveryVoided"]
    void = events[-1]["data"]
    assert void["request_reopened"] is True and void["reason"] == "wrong door"
    assert void["voided"] == [{"at": events[1]["occurred_at"], "event": events[1]["data"]}]
    # and she can be served again
    again = await aid.post(f"/requests/{request}/deliveries", delivery_body(200))
    assert again.status_code == 201, again.text


async def test_the_first_of_two_deliveries_voided_closes_the_request_from_the_second(
    aid: Aid,
) -> None:
    request, first = await given_a_delivery(aid)
    second = (await aid.post(f"/requests/{request}/deliveries", delivery_body(300))).json()[
        "delivery"
    ]

    await aid.post(f"/deliveries/{second}/void", {"request": request, "reason": "twice"})
    await aid.post(f"/deliveries/{first}/void", {"request": request, "reason": "wrong door"})

    voids = [e["data"] for e in await aid.published() if e["type"] == "AidDeliveryVoided"]
    voids = [v for v in voids if v["request"] == request]
    # the second closed nothing; the first had closed the request, which is open again
    assert [(v["request_reopened"], v["request_closed_again_at"]) for v in voids] == [
        (False, None),
        (True, None),
    ]


async def test_voiding_twice_is_409_and_an_unknown_delivery_404_over_http_and_nats(
    aid: Aid,
) -> None:
    request, delivery = await given_a_delivery(aid)
    body = {"request": request, "reason": "wrong door"}
    assert (await aid.post(f"/deliveries/{delivery}/void", body)).status_code == 200
    stored = await aid.stored()

    again = await aid.post(f"/deliveries/{delivery}/void", body)
    by_nats = await aid.request("VoidDelivery", {**body, "delivery": delivery})
    unknown = await aid.post("/deliveries/delivery:nowhere/void", body)
    unknown_by_nats = await aid.request("VoidDelivery", {**body, "delivery": "delivery:nowhere"})

    assert (again.status_code, again.json()["rule"]) == (409, "a_fact_is_voided_once")
    assert by_nats["status"] == 409
    assert (unknown.status_code, unknown.json()["resource"]) == (404, "delivery:nowhere")
    assert unknown_by_nats["status"] == 404
    assert await aid.stored() == stored


async def test_a_delivery_corrected_keeps_its_reference_and_takes_the_real_items(
    aid: Aid,
) -> None:
    request, delivery = await given_a_delivery(aid)

    corrected = await aid.post(
        f"/deliveries/{delivery}/correct",
        {**delivery_body(95, items=[MEDICINE], persons_served=2), "request": request,
         "reason": "no vegetables that day"},
    )  # fmt: skip

    assert corrected.status_code == 200, corrected.text
    (shown,) = corrected.json()["deliveries"]
    assert (shown["delivery"], shown["kinds"], shown["persons_served"]) == (
        delivery,
        ["medicine"],
        2,
    )
    assert corrected.json()["status"] == "delivered"
    (void,) = [e["data"] for e in await aid.published() if e["type"] == "AidDeliveryVoided"
               and e["stream_id"] == request]  # fmt: skip
    assert void["request_closed_again_at"] == at(95).isoformat()  # by the replacement
    # a correction obeys the request's rules: not before it was made
    early = await aid.post(
        f"/deliveries/{delivery}/correct",
        {**delivery_body(-5), "request": request, "reason": "time"},
    )
    assert early.status_code == 409, early.text
