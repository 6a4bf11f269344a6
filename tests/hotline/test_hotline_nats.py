"""The same commands as NATS request-reply on ``<root>.hotline.cmd.<Command>``: same
validation, same error shapes as HTTP, events on the HOTLINE stream. Real nats-server, both
databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hotline_parts import Hotline
from hotline_stories import NANZHOU, WEI_YI, at, call_body, place

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def open_point(hotline: Hotline) -> str:
    reply = await hotline.request(
        "OpenHotlinePoint", {"place": place(), "opened_at": at(0).isoformat()}
    )
    assert reply["status"] == 201, reply
    return str(reply["result"]["point"])


async def test_wei_yi_is_referred_to_aid_over_nats(hotline: Hotline) -> None:
    point = await open_point(hotline)
    call = await hotline.request("ReceiveCall", call_body(point, 5))
    assert call["status"] == 201, call
    referral = await hotline.request(
        "ReferToAid",
        {
            "call": call["result"]["call"],
            "needs": ["medicine", "food"],
            "urgency": "today",
            "referred_at": at(10).isoformat(),
        },
        **hotline.as_actor("service:script"),
    )
    assert referral["status"] == 201, referral
    events = await hotline.published()
    assert [e["type"] for e in events] == ["HotlinePointOpened", "CallReceived", "ReferredToAid"]
    referred = events[-1]
    assert referred["actor"] == "service:script"
    assert referred["data"]["person"] == WEI_YI
    assert referred["data"]["place"] == NANZHOU.model_dump()
    assert referred["data"]["needs"] == ["medicine", "food"]


@pytest.mark.parametrize(
    ("command", "path", "body", "status", "detail"),
    [
        ("ReceiveCall", "/calls", {"category": "gossip"}, 422, {"field": "category"}),
        ("ReceiveCall", "/calls", {"mood": "low"}, 422, {"field": "mood"}),
        ("ReceiveCall", "/calls", {"point": "point:nowhere"}, 404, {"resource": "point:nowhere"}),
    ],
    ids=["unknown-category", "unknown-field", "unknown-point"],
)
async def test_errors_have_the_same_shape_as_over_http(
    hotline: Hotline,
    command: str,
    path: str,
    body: dict[str, Any],
    status: int,
    detail: dict[str, str],
) -> None:
    point = await open_point(hotline)
    request = {**call_body(point), **body}
    over_nats = await hotline.request(command, request)
    over_http = (await hotline.post(path, request)).json()
    assert over_nats == over_http
    assert over_nats["status"] == status
    assert {k: over_nats[k] for k in detail} == detail
    assert await hotline.stored() == 1


async def test_a_rule_is_named_over_nats(hotline: Hotline) -> None:
    point = await open_point(hotline)
    closed = await hotline.request(
        "ClosePoint", {"point": point, "reason": "relocated", "closed_at": at(60).isoformat()}
    )
    assert closed["status"] == 200, closed
    refused = await hotline.request("ReceiveCall", call_body(point, 61))
    assert refused["status"] == 409
    assert refused["rule"] == "closed_point_takes_no_calls"


async def test_a_retried_request_over_nats_appends_nothing(hotline: Hotline) -> None:
    point = await open_point(hotline)
    first = await hotline.request("ReceiveCall", call_body(point), key="k-1")
    again = await hotline.request("ReceiveCall", call_body(point), key="k-1")
    # One key space for both transports: the same command over HTTP is the same request.
    over_http = await hotline.post("/calls", call_body(point), key="k-1")
    assert first == again
    assert over_http.json() == first["result"]
    assert await hotline.stored() == 2


async def test_a_bad_item_refuses_the_whole_batch_over_nats(hotline: Hotline) -> None:
    point = await open_point(hotline)
    items = [call_body(point, minute=i % 60) for i in range(5000)]
    items[2500] = {**items[2500], "received_at": "2020-02-10T09:05:00"}
    reply = await hotline.request("ReceiveCalls", {"items": items})
    assert (reply["status"], reply["field"]) == (422, "items.2500.received_at")
    assert await hotline.stored() == 1
    items[2500] = call_body(point)
    reply = await hotline.request("ReceiveCalls", {"items": items})
    assert (reply["status"], reply["result"]["count"]) == (201, 5000)
    assert await hotline.stream_count() == 5001


async def test_replicas_share_the_commands_in_a_queue_group(hotline: Hotline) -> None:
    """A second replica on the same database: each request is handled once, by one of them."""
    async with hotline.replica():
        point = await open_point(hotline)
        replies = await asyncio.gather(
            *(hotline.request("ReceiveCall", call_body(point, i)) for i in range(40))
        )
    assert {r["status"] for r in replies} == {201}
    assert await hotline.stream_count() == 41
