"""The reference scenario's Guangzhou–Qingyuan produce (穗清农产品), end to end: 1.3 t of
vegetables and 345 chickens received from Qingyuan, handed to 680 households in hardship,
partly by stations and partly by aid couriers at the door (the last few doors beyond the
stock, recorded as shortfalls), with the figures a report needs
read straight off the DONATION stream."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from donation_parts import Donation
from donation_stories import at, distribution_body, produce_body, receipt_body
from harness import databases

from services.donation.entrypoints.deliveries import delivery_runner
from shared.contracts.aid import AidDelivered
from shared.contracts.envelope import Context, NewEvent
from shared.contracts.types import AidItem, Place
from shared.eventstore import Append, Database, EventStore
from shared.relay import OutboxRelay

pytestmark = pytest.mark.asyncio(loop_scope="session")

BAIYUN = Place(
    district="baiyun", street="京溪街", station="station:jingxi", organisation="org:baiyun-sw"
)


async def test_qingyuan_produce_to_680_households(donation: Donation, tmp_path: Path) -> None:
    campaign = await donation.launch(produce_body())
    for minute, items in (
        (10, [{"kind": "vegetables", "quantity": "800", "unit": "kg", "value_yuan": "6400.00"}]),
        (20, [{"kind": "vegetables", "quantity": "500", "unit": "kg", "value_yuan": "4000.00"}]),
        (30, [{"kind": "poultry", "quantity": "345", "unit": "head", "value_yuan": "27600.00"}]),
    ):
        response = await donation.post(
            f"/campaigns/{campaign}/receipts",
            receipt_body(minute, items=items, donor_kind="company", district="baiyun"),
        )
        assert response.status_code == 201, response.text

    # Stations hand out 600 households' shares: 1.8 kg of vegetables and a chicken in every
    # second household, in 15 rounds of 40 households.
    for n in range(15):
        response = await donation.post(
            f"/campaigns/{campaign}/distributions",
            distribution_body(
                120 + n,
                items=[
                    {"kind": "vegetables", "quantity": "72", "unit": "kg"},
                    {"kind": "poultry", "quantity": "20", "unit": "head"},
                ],
                recipient_kind="households",
                recipients=40,
                district=("haizhu", "baiyun")[n % 2],
                group="low_income",
            ),
        )
        assert response.status_code == 201, response.text

    # Couriers take the last 80 households' shares to their doors (aid deliveries naming the
    # campaign); the last ones ask for more than is left: drawn to zero, the rest shortfalls.
    aid = EventStore(Database(databases.sqlite_url(tmp_path / "aid")), "aid")
    await aid.setup()
    deliveries = [
        AidDelivered(
            request=f"request:q{n}",
            delivery=f"delivery:q{n}",
            person=f"person:q{n}",
            group="elderly_alone",
            place=BAIYUN,
            items=(
                AidItem(kind="vegetables", quantity=Decimal(3), unit="kg", campaign=campaign),
                AidItem(kind="poultry", quantity=Decimal(n % 2), unit="head", campaign=campaign)
                if n % 2
                else AidItem(kind="medicine", quantity=Decimal(1), unit="box"),
            ),
            persons_served=1,
        )
        for n in range(80)
    ]
    await aid.append_all(
        [Append(d.request, 0, [NewEvent(d, at(600 + i))]) for i, d in enumerate(deliveries)],
        Context("worker:courier-1"),
    )
    await OutboxRelay(aid, donation.nc, donation.naming).publish_pending()
    runner = delivery_runner(donation.nc, donation.service.store, donation.naming)
    await runner.setup()
    assert await runner.drain("aid") == 80
    await aid.db.dispose()

    assert await donation.stock(campaign) == {
        ("poultry", "head"): "5",  # 345 - 300 - 40
        ("vegetables", "kg"): "0",  # 1300 - 1080, then 220 drawn of the 240 asked
    }
    events = await donation.published()
    received = [i for e in events if e["type"] == "GoodsReceived" for i in e["data"]["items"]]
    handed = [e for e in events if e["type"] == "GoodsDistributed"]
    shortfalls = [e["data"] for e in events if e["type"] == "StockShortfallRecorded"]

    def total(lines: list[dict[str, str]], kind: str) -> Decimal:
        return sum((Decimal(i["quantity"]) for i in lines if i["kind"] == kind), Decimal(0))

    assert total(received, "vegetables") == 1300 and total(received, "poultry") == 345
    assert sum(Decimal(i["value_yuan"]) for i in received) == Decimal("38000.00")
    households = sum(e["data"]["recipients"] for e in handed if e["data"]["delivery"] is None)
    people = sum(e["data"]["recipients"] for e in handed if e["data"]["delivery"] is not None)
    # Three of the 80 doors got nothing from this campaign (no vegetables left, no chicken
    # asked): their deliveries show only as shortfalls, not as recipients of the campaign.
    assert (households, people) == (600, 77)
    empty = {f"delivery:q{n}" for n in (74, 76, 78)}
    assert empty <= {s["delivery"] for s in shortfalls}
    assert not empty & {e["data"]["delivery"] for e in handed}
    out = [i for e in handed for i in e["data"]["items"]]
    assert total(out, "vegetables") == 1300
    assert total(out, "poultry") == 340
    # 220 kg left for 80 deliveries of 3 kg: 73 drawn whole, the 74th gets 1 kg, six get none.
    assert [(s["requested"], s["drawn"], s["short"]) for s in shortfalls] == [("3", "1", "2")] + [
        ("3", "0", "3")
    ] * 6
    assert [s["delivery"] for s in shortfalls] == [f"delivery:q{n}" for n in range(73, 80)]
    assert {s["district"] for s in shortfalls} == {"baiyun"}
    assert all(e["data"]["district"] in ("haizhu", "baiyun") for e in handed)
