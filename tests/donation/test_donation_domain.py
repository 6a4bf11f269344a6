"""The donation aggregates as stories: given these events, when this command, then these
events (or this refusal). Pure: no database, no NATS."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from donation_stories import ORG, at
from harness.stories import given

from services.donation.domain import Campaign, VolunteerLink, distribution_id_for_delivery
from shared.contracts.donation import (
    CampaignLaunched,
    DonationPledged,
    GoodsReceived,
    StockShortfallRecorded,
)
from shared.contracts.types import AidItem, Item
from shared.domain.aggregate import Aggregate
from shared.domain.errors import InvalidInput, NotFound, RuleBroken

CAMPAIGN = "campaign:lunch"
TAGS: dict[str, Any] = {"campaign": CAMPAIGN, "campaign_kind": "charity", "organisation": ORG}

LAUNCHED = CampaignLaunched(
    **TAGS,
    title="暖心午餐",
    districts=("yuexiu", "tianhe", "haizhu", "liwan"),
    starts_on=date(2020, 2, 10),
    ends_on=date(2020, 2, 16),
)


def item(kind: str, quantity: str, unit: str, value: str | None = None) -> Item:
    return Item.model_validate(
        {"kind": kind, "quantity": quantity, "unit": unit, "value_yuan": value}
    )


def aid_item(kind: str, quantity: str, unit: str, value: str | None = None) -> AidItem:
    return AidItem.model_validate(
        {
            "kind": kind,
            "quantity": quantity,
            "unit": unit,
            "value_yuan": value,
            "campaign": CAMPAIGN,
        }
    )


LUNCHES = item("meals", "500", "meal", "12500.00")
RECEIVED = GoodsReceived(**TAGS, receipt="receipt:1", donor_kind="company", items=(LUNCHES,))


def then(aggregate: Aggregate) -> list[tuple[str, dict[str, Any]]]:
    return [(e.data.type_name(), e.data.model_dump(mode="json")) for e in aggregate.pending]


def stocked() -> Campaign:
    return given(Campaign, CAMPAIGN, (LAUNCHED, 0), (RECEIVED, 10))


def test_an_organisation_launches_the_warm_lunches() -> None:
    campaign = Campaign.launch(
        CAMPAIGN,
        "charity",
        ORG,
        "暖心午餐",
        ("yuexiu", "tianhe", "haizhu", "liwan"),
        date(2020, 2, 10),
        date(2020, 2, 16),
        at(0),
    )
    assert then(campaign) == [("CampaignLaunched", LAUNCHED.model_dump(mode="json"))]


def test_goods_received_fill_the_stock_per_kind_and_unit() -> None:
    campaign = stocked()
    campaign.receive_goods(
        "receipt:2",
        "individual",
        (
            item("meals", "100", "meal"),
            item("vegetables", "2", "kg"),
            item("vegetables", "4", "jin"),
        ),
        "tianhe",
        None,
        at(20),
    )
    [(kind, data)] = then(campaign)
    assert kind == "GoodsReceived"
    assert (data["campaign"], data["campaign_kind"], data["organisation"]) == (
        CAMPAIGN,
        "charity",
        ORG,
    )
    assert campaign.stock == {
        ("meals", "meal"): Decimal(600),
        ("vegetables", "kg"): Decimal(2),
        ("vegetables", "jin"): Decimal(4),
    }
    assert campaign.view()["goods_value_yuan"] == "12500.00"


def test_a_distribution_larger_than_the_stock_is_refused_naming_the_rule() -> None:
    campaign = stocked()
    campaign.distribute(
        "distribution:1",
        (item("meals", "300", "meal"),),
        "people",
        300,
        "yuexiu",
        None,
        None,
        at(60),
    )
    with pytest.raises(RuleBroken) as refused:
        campaign.distribute(
            "distribution:2",
            (item("meals", "150", "meal"), item("meals", "60", "meal")),
            "people",
            210,
            "yuexiu",
            None,
            None,
            at(61),
        )
    assert refused.value.rule == "stock_never_negative"
    assert "holds 200 meal of meals" in refused.value.message
    assert [e[0] for e in then(campaign)] == ["GoodsDistributed"]
    assert campaign.stock[("meals", "meal")] == Decimal(200)
    with pytest.raises(RuleBroken) as other_unit:
        campaign.distribute(
            "distribution:3",
            (item("meals", "1", "pack"),),
            "people",
            1,
            "yuexiu",
            None,
            None,
            at(62),
        )
    assert other_unit.value.rule == "stock_never_negative"


def test_goods_go_out_only_where_the_campaign_runs() -> None:
    with pytest.raises(RuleBroken) as refused:
        stocked().distribute(
            "distribution:1",
            (item("meals", "1", "meal"),),
            "people",
            1,
            "panyu",
            None,
            None,
            at(60),
        )
    assert refused.value.rule == "district_outside_campaign"


def test_nothing_before_the_launch_nothing_taken_in_after_the_end() -> None:
    campaign = stocked()
    with pytest.raises(RuleBroken) as early:
        campaign.receive_funds("receipt:f", "company", Decimal("10.00"), None, None, at(-1))
    assert early.value.rule == "campaign_takes_records_once_launched"
    with pytest.raises(RuleBroken) as late:
        # 2020-02-17 00:30 in Guangzhou is the day after the last, though still the 16th in UTC.
        campaign.receive_funds(
            "receipt:f", "company", Decimal("10.00"), None, None, at(7 * 1440 - 510)
        )
    assert late.value.rule == "campaign_ended"
    with pytest.raises(NotFound):
        Campaign("campaign:nowhere").receive_funds(
            "receipt:f", "company", Decimal(1), None, None, at(0)
        )


def test_a_pledge_is_fulfilled_by_its_receipts() -> None:
    campaign = given(
        Campaign,
        CAMPAIGN,
        (LAUNCHED, 0),
        (
            DonationPledged(
                **TAGS,
                pledge="pledge:1",
                donor="donor:canteen",
                donor_kind="company",
                goods=(item("meals", "1000", "meal"),),
                funds_yuan=Decimal("5000.00"),
            ),
            5,
        ),
    )
    campaign.receive_goods(
        "receipt:1", None, (item("meals", "600", "meal"),), None, "pledge:1", at(10)
    )
    campaign.receive_funds("receipt:2", None, Decimal("5000.00"), None, "pledge:1", at(11))
    assert not campaign.pledges["pledge:1"].fulfilled
    campaign.receive_goods(
        "receipt:3", None, (item("meals", "400", "meal"),), None, "pledge:1", at(12)
    )
    assert campaign.pledges["pledge:1"].fulfilled
    assert all(d["donor_kind"] == "company" for _, d in then(campaign))  # the pledge's donor
    with pytest.raises(NotFound):
        campaign.receive_goods("receipt:4", None, (LUNCHES,), None, "pledge:nowhere", at(13))
    with pytest.raises(RuleBroken) as wrong:
        campaign.receive_goods("receipt:4", "individual", (LUNCHES,), None, "pledge:1", at(13))
    assert wrong.value.rule == "donor_kind_is_the_pledges"
    with pytest.raises(InvalidInput) as anonymous:
        campaign.receive_goods("receipt:4", None, (LUNCHES,), None, None, at(13))
    assert anonymous.value.field == "donor_kind"


def test_self_help_outputs_belong_to_self_help_projects() -> None:
    with pytest.raises(RuleBroken) as refused:
        stocked().record_output(
            "output:1", "vegetables", Decimal(1000), "kg", 80, "yuexiu", None, None, None, at(30)
        )
    assert refused.value.rule == "outputs_belong_to_self_help"
    farm = given(
        Campaign,
        "campaign:farm",
        (
            LAUNCHED.model_copy(
                update={
                    "campaign": "campaign:farm",
                    "campaign_kind": "self_help",
                    "districts": ("conghua",),
                }
            ),
            0,
        ),
    )
    farm.record_output(
        "output:1",
        "vegetables",
        Decimal(1000),
        "kg",
        40,
        "conghua",
        None,
        "low_income",
        Decimal("11000.00"),
        at(30),
    )
    [(kind, data)] = then(farm)
    assert kind == "ProjectOutputRecorded" and data["income_yuan"] == "11000.00"
    assert data["campaign_kind"] == "self_help" and data["district"] == "conghua"


def test_volunteers_link_to_a_campaign_or_a_station() -> None:
    campaign = stocked()
    campaign.link_volunteers(12, "tianhe", "station:tianhe-1", at(30))
    [(_, data)] = then(campaign)
    assert (data["campaign"], data["campaign_kind"], data["organisation"]) == (
        CAMPAIGN,
        "charity",
        ORG,
    )
    link = VolunteerLink.link("volunteers:1", 5, ORG, "haizhu", "station:nanzhou", at(30))
    [(_, data)] = then(link)
    assert data["campaign"] is None and data["station"] == "station:nanzhou"


def test_an_aid_delivery_draws_what_there_is_and_records_the_shortfall() -> None:
    campaign = stocked()
    assert campaign.draw(
        "delivery:1",
        [aid_item("meals", "450", "meal", "900.00"), aid_item("meals", "100", "meal", "200.00")],
        3,
        "haizhu",
        "station:nanzhou",
        "elderly_alone",
        at(90),
    )
    (_, drawn), (_, short) = then(campaign)
    assert drawn["distribution"] == distribution_id_for_delivery("delivery:1", CAMPAIGN)
    assert drawn["delivery"] == "delivery:1" and drawn["recipients"] == 3
    # 500 of 550 drawn: the value prorated to what came out of this stock.
    assert drawn["items"] == [
        {"kind": "meals", "quantity": "500", "unit": "meal", "value_yuan": "1000.00"}
    ]
    assert short == StockShortfallRecorded(
        **TAGS,
        delivery="delivery:1",
        kind="meals",
        unit="meal",
        requested=Decimal(550),
        drawn=Decimal(500),
        short=Decimal(50),
        district="haizhu",
        station="station:nanzhou",
        group="elderly_alone",
    ).model_dump(mode="json")
    assert campaign.stock[("meals", "meal")] == 0
    # An empty stock: only the shortfall. A delivery seen again draws nothing.
    assert campaign.draw(
        "delivery:2", [aid_item("meals", "1", "meal")], 1, "haizhu", None, None, at(91)
    )
    assert [e[0] for e in then(campaign)][-1] == "StockShortfallRecorded"
    before = len(campaign.pending)
    assert not campaign.draw(
        "delivery:1", [aid_item("meals", "1", "meal")], 1, "haizhu", None, None, at(92)
    )
    assert len(campaign.pending) == before
