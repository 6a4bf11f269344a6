"""The donation HTTP API on real parts (both databases, the session's nats-server): commands
as POSTs, current state and stock as GETs, the error shapes, Idempotency-Key, all-or-nothing
receipt batches, and the events that reach the DONATION stream."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
from donation_parts import Donation
from donation_stories import (
    CHICKENS,
    LIAISON,
    LUNCHES,
    ORG,
    VEGETABLES,
    at,
    campaign_body,
    distribution_body,
    farm_body,
    produce_body,
    receipt_body,
)

from services.donation.application.service import donation_service
from services.donation.entrypoints.http import build_donation_app

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_warm_lunches_from_pledge_to_plate_and_their_events_on_the_stream(
    donation: Donation,
) -> None:
    campaign = await donation.launch(campaign_body())
    pledged = await donation.post(
        f"/campaigns/{campaign}/pledges",
        {
            "donor": "donor:canteen-7",
            "donor_kind": "company",
            "goods": [LUNCHES],
            "funds_yuan": "3000.00",
            "pledged_at": at(5).isoformat(),
        },
    )
    assert pledged.status_code == 201, pledged.text
    pledge = pledged.json()["pledge"]
    received = await donation.post(
        f"/campaigns/{campaign}/receipts",
        {"items": [LUNCHES], "pledge": pledge, "received_at": at(10).isoformat()},
        **donation.as_actor(LIAISON),
    )
    assert received.status_code == 201, received.text
    assert received.json()["items"] == [LUNCHES]
    funds = await donation.post(
        f"/campaigns/{campaign}/funds",
        {"amount_yuan": "3000.00", "pledge": pledge, "received_at": at(11).isoformat()},
    )
    assert funds.status_code == 201, funds.text
    volunteers = await donation.post(
        "/volunteers",
        {
            "volunteers": 8,
            "district": "tianhe",
            "campaign": campaign,
            "linked_at": at(12).isoformat(),
        },
    )
    assert volunteers.status_code == 201, volunteers.text
    handed = await donation.post(f"/campaigns/{campaign}/distributions", distribution_body())
    assert handed.status_code == 201, handed.text
    assert handed.json()["distribution"].startswith("distribution:")

    assert await donation.stock(campaign) == {("meals", "meal"): "300"}
    state = (await donation.http.get(f"/campaigns/{campaign}")).json()
    assert (state["funds_yuan"], state["goods_value_yuan"]) == ("3000.00", "12500.00")
    assert state["volunteers"] == 8 and state["recipients"] == 200 and state["version"] == 6
    assert state["pledges"][0]["fulfilled"] is True

    events = await donation.published()
    assert [e["type"] for e in events] == [
        "CampaignLaunched",
        "DonationPledged",
        "GoodsReceived",
        "FundsReceived",
        "VolunteersLinked",
        "GoodsDistributed",
    ]
    assert {e["stream_id"] for e in events} == {campaign}
    assert events[2]["actor"] == LIAISON
    for event in events:  # every event carries what a report splits by
        assert event["data"]["campaign"] == campaign
        assert event["data"]["organisation"] == ORG
        assert event["data"]["campaign_kind"] == "charity"
    assert events[2]["data"]["donor_kind"] == "company"  # from the pledge
    assert events[3]["data"]["amount_yuan"] == "3000.00"
    assert events[5]["data"]["district"] == "yuexiu"
    assert events[5]["occurred_at"] == at(60).isoformat()


async def test_a_distribution_larger_than_the_stock_is_409_and_stores_nothing(
    donation: Donation,
) -> None:
    campaign = await donation.launch(campaign_body())
    await donation.post(f"/campaigns/{campaign}/receipts", receipt_body())
    refused = await donation.post(
        f"/campaigns/{campaign}/distributions", distribution_body(quantity="501")
    )
    assert refused.status_code == 409
    assert refused.json() == {
        "status": 409,
        "error": f"{campaign} holds 500 meal of meals: cannot distribute 501",
        "rule": "stock_never_negative",
    }
    assert await donation.stored() == 2
    assert await donation.stock(campaign) == {("meals", "meal"): "500"}


async def test_concurrent_distributions_never_take_the_stock_below_zero(donation: Donation) -> None:
    campaign = await donation.launch(campaign_body())
    await donation.post(f"/campaigns/{campaign}/receipts", receipt_body())  # 500 lunches
    responses = await asyncio.gather(
        *(
            donation.post(f"/campaigns/{campaign}/distributions", distribution_body(60 + i, "100"))
            for i in range(8)
        )
    )
    statuses = [r.status_code for r in responses]
    assert statuses.count(201) <= 5
    for r in responses:
        if r.status_code == 409:
            assert r.json()["rule"] in {"stock_never_negative", "concurrency_conflict"}
    left = 500 - 100 * statuses.count(201)
    assert await donation.stock(campaign) == {("meals", "meal"): str(left)}


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/campaigns", campaign_body(campaign_kind="lottery"), "campaign_kind"),
        ("/campaigns", campaign_body(launched_at="2020-02-10T09:00:00"), "launched_at"),
        ("/campaigns", campaign_body(launched_at="2999-01-01T00:00:00+08:00"), "launched_at"),
        ("/campaigns", campaign_body(ends_on="2020-02-01"), "ends_on"),
        ("/campaigns", campaign_body(districts=["yuexiu", "yuexiu"]), "districts"),
        ("/campaigns", campaign_body(donor_name="张三"), "donor_name"),
        (
            "/volunteers",
            {"volunteers": 3, "district": "haizhu", "linked_at": at(1).isoformat()},
            "campaign",
        ),
        (
            "/volunteers",
            {
                "volunteers": 3,
                "district": "haizhu",
                "station": "station:nanzhou",
                "linked_at": at(1).isoformat(),
            },
            "organisation",
        ),
        (
            "/volunteers",
            {
                "volunteers": 0,
                "district": "haizhu",
                "station": "station:nanzhou",
                "organisation": ORG,
                "linked_at": at(1).isoformat(),
            },
            "volunteers",
        ),
    ],
    ids=[
        "kind",
        "naive",
        "future",
        "ends-first",
        "repeated-district",
        "unknown-field",
        "no-campaign-or-station",
        "station-without-organisation",
        "no-volunteers",
    ],
)
async def test_invalid_input_is_refused_naming_the_field(
    donation: Donation, path: str, body: dict[str, Any], field: str
) -> None:
    response = await donation.post(path, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert await donation.stored() == 0


@pytest.mark.parametrize(
    ("route", "body", "status", "detail"),
    [
        (
            "funds",
            {"amount_yuan": "0.00", "donor_kind": "individual", "received_at": at(5).isoformat()},
            422,
            {"field": "amount_yuan"},
        ),
        (
            "funds",
            {"amount_yuan": 100.5, "donor_kind": "individual", "received_at": at(5).isoformat()},
            422,
            {"field": "amount_yuan"},
        ),
        (
            "funds",
            {"amount_yuan": "1.005", "donor_kind": "individual", "received_at": at(5).isoformat()},
            422,
            {"field": "amount_yuan"},
        ),
        (
            "funds",
            {"amount_yuan": "100", "received_at": at(5).isoformat()},
            422,
            {"field": "donor_kind"},
        ),
        (
            "funds",
            {"amount_yuan": "100", "donor_kind": "individual", "received_at": at(-5).isoformat()},
            409,
            {"rule": "campaign_takes_records_once_launched"},
        ),
        (
            "funds",
            {
                "amount_yuan": "100",
                "donor_kind": "individual",
                "received_at": "2020-02-20T09:00:00+08:00",
            },
            409,
            {"rule": "campaign_ended"},
        ),
        ("receipts", receipt_body(items=[]), 422, {"field": "items"}),
        (
            "receipts",
            receipt_body(items=[{**LUNCHES, "unit": "bowl"}]),
            422,
            {"field": "items.0.unit"},
        ),
        (
            "receipts",
            receipt_body(items=[{**LUNCHES, "quantity": "-1"}]),
            422,
            {"field": "items.0.quantity"},
        ),
        ("receipts", receipt_body(district="panyu"), 409, {"rule": "district_outside_campaign"}),
        ("receipts", receipt_body(pledge="pledge:nowhere"), 404, {"resource": "pledge:nowhere"}),
        ("receipts", receipt_body(campaign="campaign:other"), 422, {"field": "campaign"}),
        (
            "pledges",
            {"donor": "donor:x", "donor_kind": "company", "pledged_at": at(1).isoformat()},
            422,
            {"field": "goods"},
        ),
        (
            "pledges",
            {
                "donor": "Mr Wang 13800000000",
                "donor_kind": "individual",
                "funds_yuan": "5",
                "pledged_at": at(1).isoformat(),
            },
            422,
            {"field": "donor"},
        ),
        ("distributions", distribution_body(recipients=0), 422, {"field": "recipients"}),
        (
            "distributions",
            distribution_body(recipient_kind="dogs"),
            422,
            {"field": "recipient_kind"},
        ),
        (
            "outputs",
            {
                "kind": "vegetables",
                "quantity": "10",
                "unit": "kg",
                "beneficiaries": 5,
                "district": "yuexiu",
                "produced_at": at(5).isoformat(),
            },
            409,
            {"rule": "outputs_belong_to_self_help"},
        ),
    ],
    ids=[
        "zero-money",
        "float-money",
        "fractional-fen",
        "no-donor-kind",
        "early",
        "ended",
        "no-items",
        "unit",
        "negative",
        "district",
        "unknown-pledge",
        "campaign-in-body",
        "pledge-of-nothing",
        "pii-donor",
        "nobody",
        "recipient-kind",
        "charity-output",
    ],
)
async def test_a_bad_command_in_a_campaign_is_refused_and_nothing_is_stored(
    donation: Donation, route: str, body: dict[str, Any], status: int, detail: dict[str, str]
) -> None:
    campaign = await donation.launch(campaign_body())
    response = await donation.post(f"/campaigns/{campaign}/{route}", body)
    assert response.status_code == status, response.text
    assert {k: response.json()[k] for k in detail} == detail
    assert await donation.stored() == 1


async def test_unknown_campaigns_are_404(donation: Donation) -> None:
    for path in (
        "/campaigns/campaign:nowhere",
        "/campaigns/campaign:nowhere/stock",
        "/volunteers/volunteers:nowhere",
    ):
        response = await donation.http.get(path)
        assert response.status_code == 404, path
        assert response.json()["resource"] == path.split("/")[2]
    response = await donation.post("/campaigns/campaign:nowhere/receipts", receipt_body())
    assert (response.status_code, response.json()["resource"]) == (404, "campaign:nowhere")
    volunteers = await donation.post(
        "/volunteers",
        {
            "volunteers": 2,
            "district": "haizhu",
            "campaign": "campaign:nowhere",
            "linked_at": at(1).isoformat(),
        },
    )
    assert volunteers.status_code == 404
    assert await donation.stored() == 0


async def test_volunteers_linked_to_a_station_alone(donation: Donation) -> None:
    response = await donation.post(
        "/volunteers",
        {
            "volunteers": 5,
            "district": "haizhu",
            "station": "station:nanzhou",
            "organisation": ORG,
            "linked_at": at(1).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    link = response.json()
    assert (await donation.http.get(f"/volunteers/{link['volunteers']}")).json()["count"] == 5
    [event] = await donation.published()
    assert event["type"] == "VolunteersLinked"
    assert event["data"] == {
        "volunteers": 5,
        "organisation": ORG,
        "district": "haizhu",
        "station": "station:nanzhou",
        "campaign": None,
        "campaign_kind": None,
        "link": None,  # its stream is its reference
    }


async def test_stations_recording_into_one_campaign_at_once_all_land(
    donation: Donation,
) -> None:
    """Receipts only add: they land on the campaign's latest version, never refused for a
    race (distributions, which check the stock, still decide on the version they read)."""
    campaign = await donation.launch(campaign_body())
    path = f"/campaigns/{campaign}/receipts"
    responses = await asyncio.gather(
        *(donation.post(path, receipt_body(10 + i)) for i in range(24))
    )
    assert [r.status_code for r in responses] == [201] * 24
    assert await donation.stock(campaign) == {("meals", "meal"): str(24 * 500)}
    versions = [e["version"] for e in await donation.published()]
    assert versions == list(range(1, 26))


async def test_a_retried_receipt_returns_the_first_response_and_appends_nothing(
    donation: Donation,
) -> None:
    campaign = await donation.launch(campaign_body())
    path = f"/campaigns/{campaign}/receipts"
    responses = await asyncio.gather(
        *(donation.post(path, receipt_body(), key="r-1") for _ in range(6))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    other = await donation.post(path, receipt_body(district="tianhe"), key="r-1")
    assert (other.status_code, other.json()["field"]) == (422, "Idempotency-Key")
    assert await donation.stored() == 2
    assert await donation.stock(campaign) == {("meals", "meal"): "500"}


async def test_a_stations_receipts_in_one_batch_all_or_nothing(donation: Donation) -> None:
    lunches = await donation.launch(campaign_body())
    produce = await donation.launch(produce_body())
    items = [{"campaign": lunches, **receipt_body(10 + i)} for i in range(3)]
    items += [
        {"campaign": produce, **receipt_body(20, items=[VEGETABLES, CHICKENS], district="baiyun")},
        {"campaign": produce, **receipt_body(21, district="yuexiu")},  # outside the campaign
    ]
    refused = await donation.post("/receipts:batch", {"items": items})
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"].startswith("items.4: ")
    assert await donation.stored() == 2

    items[4] = {"campaign": produce, **receipt_body(21, items=[CHICKENS], district="haizhu")}
    done = await donation.post("/receipts:batch", {"items": items}, key="station-day-1")
    assert done.status_code == 201, done.text
    assert done.json()["count"] == 5
    assert await donation.stock(lunches) == {("meals", "meal"): "1500"}
    assert await donation.stock(produce) == {
        ("poultry", "head"): "200",
        ("vegetables", "kg"): "300",
    }
    events = await donation.published()
    assert [e["type"] for e in events].count("GoodsReceived") == 5
    # One batch, one transaction: one correlation for its receipts.
    assert len({e["correlation_id"] for e in events if e["type"] == "GoodsReceived"}) == 1

    too_many = await donation.post("/receipts:batch", {"items": [items[0]] * 5001})
    assert (too_many.status_code, too_many.json()["field"]) == (422, "items")
    bad = await donation.post("/receipts:batch", {"items": [items[0], {**items[1], "items": []}]})
    assert (bad.status_code, bad.json()["field"]) == (422, "items.1.items")
    early = await donation.post(
        "/receipts:batch", {"items": [items[0], {**items[1], "received_at": at(-9).isoformat()}]}
    )
    assert early.status_code == 409, early.text
    assert early.json()["error"].startswith("items.1: received_at")
    assert await donation.stored() == 7


async def test_the_chengjiao_farm_produce_sold_for_poor_farmers(donation: Donation) -> None:
    """城郊街: residents sold over 2,000 jin of farm produce for poor farmers, CNY 11,000."""
    farm = await donation.launch(farm_body())
    for minute, jin, income in ((60, "1200", "6600.00"), (1500, "850", "4400.00")):
        response = await donation.post(
            f"/campaigns/{farm}/outputs",
            {
                "kind": "vegetables",
                "quantity": jin,
                "unit": "jin",
                "beneficiaries": 12,
                "district": "conghua",
                "station": "station:chengjiao",
                "group": "low_income",
                "income_yuan": income,
                "produced_at": at(minute).isoformat(),
            },
        )
        assert response.status_code == 201, response.text
    state = (await donation.http.get(f"/campaigns/{farm}")).json()
    assert (state["outputs"], state["beneficiaries"], state["income_yuan"]) == (2, 24, "11000.00")
    outputs = [e for e in await donation.published() if e["type"] == "ProjectOutputRecorded"]
    assert sum(int(e["data"]["quantity"]) for e in outputs) == 2050
    assert {e["data"]["campaign_kind"] for e in outputs} == {"self_help"}


async def test_the_openapi_document_names_every_route(donation: Donation) -> None:
    document = (await donation.http.get("/openapi.json")).json()
    assert set(document["paths"]) == {
        "/campaigns",
        "/campaigns/{campaign}/pledges",
        "/campaigns/{campaign}/receipts",
        "/receipts:batch",
        "/campaigns/{campaign}/funds",
        "/volunteers",
        "/campaigns/{campaign}/distributions",
        "/campaigns/{campaign}/outputs",
        "/campaigns/{id}",
        "/campaigns/{id}/stock",
        "/volunteers/{id}",
        # corrections
        "/receipts/{receipt}/void",
        "/receipts/{receipt}/correct",
        "/funds/{receipt}/void",
        "/funds/{receipt}/correct",
        "/volunteers/{link}/void",
        "/distributions/{distribution}/void",
        "/distributions/{distribution}/correct",
        "/outputs/{output}/void",
    }
    assert "campaign" not in document["components"]["schemas"]["ReceiveGoodsBody"]["properties"]


async def test_a_replica_sees_what_another_replica_recorded_in_a_campaign(
    donation: Donation,
) -> None:
    """Campaigns are kept folded in memory between commands; another replica's events on the
    same database are read on the next load, so its stock is never decided on stale."""
    campaign = await donation.launch(campaign_body())
    await donation.post(f"/campaigns/{campaign}/receipts", receipt_body())  # 500, cached here
    replica = donation_service(donation.service.store)
    other = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_donation_app(replica, donation.gate)),
        base_url="http://localhost",
        headers=donation.http.headers,
    )
    async with other:
        handed = await other.post(
            f"/campaigns/{campaign}/distributions",
            content=orjson.dumps(distribution_body(quantity="450")),
        )
        assert handed.status_code == 201, handed.text
    refused = await donation.post(
        f"/campaigns/{campaign}/distributions", distribution_body(quantity="100")
    )
    assert (refused.status_code, refused.json()["rule"]) == (409, "stock_never_negative")
    assert await donation.stock(campaign) == {("meals", "meal"): "50"}
