"""The same commands as NATS request-reply on ``<root>.aid.cmd.<Command>``: same validation,
same error shapes as HTTP, one key space, events on the AID stream, a queue group shared by
replicas. Real nats-server, both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aid_parts import Aid
from aid_stories import WORKER, at, delivery_body, place, request_body

from shared.contracts.refs import person_ref

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def open_request(aid: Aid) -> str:
    reply = await aid.request("RequestAid", request_body())
    assert reply["status"] == 201, reply
    return str(reply["result"]["request"])


async def test_a_request_is_assigned_and_delivered_over_nats(aid: Aid) -> None:
    request = await open_request(aid)
    assigned = await aid.request(
        "AssignAid",
        {"request": request, "assignee": WORKER, "assigned_at": at(10).isoformat()},
        **aid.as_actor("service:dispatch"),
    )
    assert assigned["status"] == 200, assigned
    delivered = await aid.request("RecordDelivery", {"request": request, **delivery_body()})
    assert delivered["status"] == 201, delivered
    assert delivered["result"]["status"] == "delivered"
    events = await aid.published()
    assert [e["type"] for e in events] == ["AidRequested", "AidAssigned", "AidDelivered"]
    assert events[1]["actor"] == "service:dispatch"


async def test_an_emergency_and_a_batch_over_nats(aid: Aid) -> None:
    case = await aid.request(
        "OpenEmergency",
        {
            "kind": "sudden_illness",
            "person": person_ref("p9"),
            "group": "low_income",
            "place": place(),
            "origin": "hospital",
            "opened_at": at(1).isoformat(),
        },
    )
    assert case["status"] == 201, case
    request = case["result"]["request"]
    batch = await aid.request(
        "RecordDeliveries",
        {"items": [{"request": request, **delivery_body(30 + i)} for i in range(3)]},
    )
    assert (batch["status"], batch["result"]["count"]) == (201, 3)
    assert len(await aid.published()) == 5


@pytest.mark.parametrize(
    ("command", "path", "body", "status", "detail"),
    [
        ("RequestAid", "/requests", {"group": "rich"}, 422, {"field": "group"}),
        ("RequestAid", "/requests", {"mood": "low"}, 422, {"field": "mood"}),
        (
            "AssignAid",
            "/requests/request:nowhere/assign",
            {"assignee": WORKER, "assigned_at": at(1).isoformat()},
            404,
            {"resource": "request:nowhere"},
        ),
        (
            "AssignAid",
            "/requests/request:nowhere/assign",
            {"assignee": "Zhang San", "assigned_at": at(1).isoformat()},
            422,
            {"field": "assignee"},
        ),
    ],
    ids=["unknown-group", "unknown-field", "unknown-request", "assignee-not-a-ref"],
)
async def test_errors_have_the_same_shape_as_over_http(
    aid: Aid,
    command: str,
    path: str,
    body: dict[str, Any],
    status: int,
    detail: dict[str, str],
) -> None:
    if command == "RequestAid":
        over_nats = await aid.request(command, {**request_body(), **body})
        over_http = (await aid.post(path, {**request_body(), **body})).json()
    else:
        over_nats = await aid.request(command, {"request": "request:nowhere", **body})
        over_http = (await aid.post(path, body)).json()
    assert over_nats == over_http
    assert over_nats["status"] == status
    assert {k: over_nats[k] for k in detail} == detail
    assert await aid.stored() == 0


async def test_a_rule_is_named_over_nats(aid: Aid) -> None:
    request = await open_request(aid)
    await aid.request("RecordDelivery", {"request": request, **delivery_body()})
    refused = await aid.request(
        "CancelAid", {"request": request, "reason": "other", "cancelled_at": at(95).isoformat()}
    )
    assert (refused["status"], refused["rule"]) == (409, "delivered_request_cannot_be_cancelled")


async def test_one_key_space_for_both_transports(aid: Aid) -> None:
    first = await aid.request("RequestAid", request_body(), key="k-1")
    again = await aid.request("RequestAid", request_body(), key="k-1")
    over_http = await aid.post("/requests", request_body(), key="k-1")
    assert first == again
    assert over_http.json() == first["result"]
    assert await aid.stored() == 1


async def test_replicas_share_the_commands_in_a_queue_group(aid: Aid) -> None:
    """A second replica on the same database: each request is handled once, by one of them."""
    async with aid.replica():
        replies = await asyncio.gather(
            *(aid.request("RequestAid", request_body(i)) for i in range(40))
        )
    assert [r["status"] for r in replies] == [201] * 40
    assert len({r["result"]["request"] for r in replies}) == 40
    assert await aid.stored() == 40
