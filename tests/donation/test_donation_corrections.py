"""Donations recorded by mistake, on real parts: given the warm lunches' receipts, money,
distributions, a farm's output and a station's volunteers, when one is voided or corrected,
then the void is one more event on its stream, the stock follows, and a void that would
leave more handed out than received, a second void (409) or an unknown fact (404) stores
nothing, over HTTP and NATS alike."""

from __future__ import annotations

from typing import Any

import pytest
from donation_parts import Donation
from donation_stories import LUNCHES, at, campaign_body, distribution_body, farm_body, receipt_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def posted(donation: Donation, path: str, body: dict[str, Any], status: int = 201) -> Any:
    response = await donation.post(path, body)
    assert response.status_code == status, response.text
    return response.json()


def stock(campaign_view: dict[str, Any]) -> dict[str, str]:
    return {line["kind"]: line["quantity"] for line in campaign_view["stock"]}


async def test_lunches_logged_twice_are_voided_out_of_the_stock(donation: Donation) -> None:
    campaign = await donation.launch(campaign_body())
    for _ in range(2):
        receipt = (await posted(donation, f"/campaigns/{campaign}/receipts", receipt_body()))[
            "receipt"
        ]

    view = await posted(
        donation,
        f"/receipts/{receipt}/void",
        {"campaign": campaign, "reason": "the same 500 lunches logged twice"},
        200,
    )

    assert stock(view) == {"meals": "500"} and view["goods_value_yuan"] == "12500.00"
    events = [e for e in await donation.published() if e["stream_id"] == campaign]
    assert [e["type"] for e in events][-1] == "GoodsReceiptVoided"
    assert events[-1]["data"]["voided"][0]["event"]["receipt"] == receipt


async def test_a_receipt_already_handed_out_cannot_be_voided(donation: Donation) -> None:
    campaign = await donation.launch(campaign_body())
    receipt = (await posted(donation, f"/campaigns/{campaign}/receipts", receipt_body()))["receipt"]
    await posted(donation, f"/campaigns/{campaign}/distributions", distribution_body())
    stored = await donation.stored()

    refused = await donation.post(
        f"/receipts/{receipt}/void", {"campaign": campaign, "reason": "never came"}
    )

    assert (refused.status_code, refused.json()["rule"]) == (409, "stock_never_negative")
    assert await donation.stored() == stored


async def test_voiding_twice_is_409_and_an_unknown_receipt_404_over_http_and_nats(
    donation: Donation,
) -> None:
    campaign = await donation.launch(campaign_body())
    funds = (
        await posted(
            donation,
            f"/campaigns/{campaign}/funds",
            {
                "amount_yuan": "3000.00",
                "donor_kind": "individual",
                "received_at": at(11).isoformat(),
            },
        )
    )["receipt"]
    body = {"campaign": campaign, "reason": "refunded: a bank error"}
    await posted(donation, f"/funds/{funds}/void", body, 200)
    stored = await donation.stored()

    again = await donation.post(f"/funds/{funds}/void", body)
    by_nats = await donation.request("VoidFundsReceipt", {**body, "receipt": funds})
    unknown = await donation.post("/funds/receipt:nobody/void", body)
    unknown_by_nats = await donation.request(
        "VoidFundsReceipt", {**body, "receipt": "receipt:nobody"}
    )

    assert (again.status_code, again.json()["rule"]) == (409, "a_fact_is_voided_once")
    assert by_nats["status"] == 409
    assert (unknown.status_code, unknown.json()["resource"]) == (404, "receipt:nobody")
    assert unknown_by_nats["status"] == 404
    assert await donation.stored() == stored


async def test_a_receipt_a_distribution_and_money_are_corrected_in_place(
    donation: Donation,
) -> None:
    campaign = await donation.launch(campaign_body())
    receipt = (await posted(donation, f"/campaigns/{campaign}/receipts", receipt_body()))["receipt"]
    distribution = (
        await posted(donation, f"/campaigns/{campaign}/distributions", distribution_body())
    )["distribution"]

    more = {**LUNCHES, "quantity": "600", "value_yuan": "15000.00"}
    await posted(
        donation,
        f"/receipts/{receipt}/correct",
        {**receipt_body(items=[more]), "campaign": campaign, "reason": "600, not 500"},
        200,
    )
    view = await posted(
        donation,
        f"/distributions/{distribution}/correct",
        {**distribution_body(quantity="250"), "campaign": campaign, "reason": "250 plates"},
        200,
    )

    assert stock(view) == {"meals": "350"} and view["goods_value_yuan"] == "15000.00"
    assert view["recipients"] == 250


async def test_a_self_help_output_and_a_station_s_volunteers_are_voided(
    donation: Donation,
) -> None:
    farm = await donation.launch(farm_body())
    output = (
        await posted(
            donation,
            f"/campaigns/{farm}/outputs",
            {"kind": "vegetables", "quantity": "200", "unit": "jin", "beneficiaries": 12,
             "district": "conghua", "income_yuan": "1100.00", "produced_at": at(30).isoformat()},
        )
    )["output"]  # fmt: skip
    link = (
        await posted(
            donation,
            "/volunteers",
            {"volunteers": 5, "district": "haizhu", "station": "station:nanzhou",
             "organisation": "org:haizhu-sw", "linked_at": at(40).isoformat()},
        )
    )["volunteers"]  # fmt: skip

    view = await posted(
        donation, f"/outputs/{output}/void", {"campaign": farm, "reason": "wrong project"}, 200
    )
    linked = await posted(donation, f"/volunteers/{link}/void", {"reason": "counted twice"}, 200)

    assert (view["outputs"], view["beneficiaries"], view["income_yuan"]) == (0, 0, "0.00")
    # volunteers linked in a campaign are voided by the link its answer named
    lunches = await donation.launch(campaign_body())
    linked_at = at(12).isoformat()
    in_campaign = await posted(
        donation,
        "/volunteers",
        {"volunteers": 8, "district": "tianhe", "campaign": lunches, "linked_at": linked_at},
    )
    body = {"campaign": lunches, "reason": "counted twice"}
    shown = await posted(donation, f"/volunteers/{in_campaign['link']}/void", body, 200)
    assert shown["volunteers"] == 0
    assert linked["volunteers"] == link
    types = [e["type"] for e in await donation.published()]
    assert {"ProjectOutputVoided", "VolunteersLinkVoided"} <= set(types)
