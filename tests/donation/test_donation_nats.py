"""The same commands as NATS request-reply on ``<root>.donation.cmd.<Command>``: same
validation, same error shapes as HTTP, one key space, events on the DONATION stream, a queue
group shared by replicas. Real nats-server, both databases."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from donation_parts import Donation
from donation_stories import (
    CHICKENS,
    VEGETABLES,
    at,
    campaign_body,
    distribution_body,
    produce_body,
    receipt_body,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def launch(donation: Donation, body: dict[str, Any] | None = None) -> str:
    reply = await donation.request("LaunchCampaign", body or campaign_body())
    assert reply["status"] == 201, reply
    return str(reply["result"]["campaign"])


async def test_qingyuan_produce_received_and_handed_to_households_over_nats(
    donation: Donation,
) -> None:
    """穗清: vegetables and chickens from Qingyuan to households in hardship."""
    campaign = await launch(donation, produce_body())
    received = await donation.request(
        "ReceiveGoods",
        {"campaign": campaign, **receipt_body(items=[VEGETABLES, CHICKENS], district="baiyun")},
        **donation.as_actor("worker:liaison-3"),
    )
    assert received["status"] == 201, received
    handed = await donation.request(
        "DistributeGoods",
        {
            "campaign": campaign,
            **distribution_body(
                items=[
                    {"kind": "vegetables", "quantity": "250.5", "unit": "kg"},
                    {"kind": "poultry", "quantity": "60", "unit": "head"},
                ],
                recipient_kind="households",
                recipients=60,
                district="haizhu",
                group="low_income",
            ),
        },
    )
    assert handed["status"] == 201, handed
    assert await donation.stock(campaign) == {
        ("poultry", "head"): "40",
        ("vegetables", "kg"): "49.5",
    }
    funds = await donation.request(
        "ReceiveFunds",
        {
            "campaign": campaign,
            "amount_yuan": "136210.00",
            "donor_kind": "residents",
            "received_at": at(30).isoformat(),
        },
    )
    assert funds["status"] == 201 and funds["result"]["amount_yuan"] == "136210.00"
    events = await donation.published()
    assert [e["type"] for e in events] == [
        "CampaignLaunched",
        "GoodsReceived",
        "GoodsDistributed",
        "FundsReceived",
    ]
    assert events[1]["actor"] == "worker:liaison-3"
    assert events[2]["data"]["recipient_kind"] == "households"
    assert events[2]["data"]["group"] == "low_income"


@pytest.mark.parametrize(
    ("command", "route", "body", "status", "detail"),
    [
        ("ReceiveGoods", "receipts", receipt_body(items=[]), 422, {"field": "items"}),
        ("ReceiveGoods", "receipts", receipt_body(mood="kind"), 422, {"field": "mood"}),
        (
            "DistributeGoods",
            "distributions",
            distribution_body(quantity="9999"),
            409,
            {"rule": "stock_never_negative"},
        ),
    ],
    ids=["no-items", "unknown-field", "stock"],
)
async def test_errors_have_the_same_shape_as_over_http(
    donation: Donation,
    command: str,
    route: str,
    body: dict[str, Any],
    status: int,
    detail: dict[str, str],
) -> None:
    campaign = await launch(donation)
    over_nats = await donation.request(command, {"campaign": campaign, **body})
    over_http = (await donation.post(f"/campaigns/{campaign}/{route}", body)).json()
    assert over_nats == over_http
    assert over_nats["status"] == status
    assert {k: over_nats[k] for k in detail} == detail
    unknown = await donation.request(command, {"campaign": "campaign:nowhere", **body})
    if status == 409:
        assert (unknown["status"], unknown["resource"]) == (404, "campaign:nowhere")
    assert await donation.stored() == 1


async def test_one_key_space_for_both_transports_and_a_batch(donation: Donation) -> None:
    campaign = await launch(donation)
    first = await donation.request(
        "ReceiveGoods", {"campaign": campaign, **receipt_body()}, key="k-1"
    )
    again = await donation.request(
        "ReceiveGoods", {"campaign": campaign, **receipt_body()}, key="k-1"
    )
    over_http = await donation.post(f"/campaigns/{campaign}/receipts", receipt_body(), key="k-1")
    assert first == again
    assert over_http.json() == first["result"]
    batch = await donation.request(
        "ReceiveGoodsBatch",
        {"items": [{"campaign": campaign, **receipt_body(20 + i)} for i in range(4)]},
    )
    assert (batch["status"], batch["result"]["count"]) == (201, 4)
    assert await donation.stock(campaign) == {("meals", "meal"): "2500"}
    assert await donation.stored() == 6


async def test_replicas_share_the_commands_in_a_queue_group(donation: Donation) -> None:
    """A second replica on the same database: each request is handled once, by one of them."""
    async with donation.replica():
        replies = await asyncio.gather(
            *(donation.request("LaunchCampaign", campaign_body(i)) for i in range(30))
        )
    assert [r["status"] for r in replies] == [201] * 30
    assert len({r["result"]["campaign"] for r in replies}) == 30
    assert await donation.stored() == 30
