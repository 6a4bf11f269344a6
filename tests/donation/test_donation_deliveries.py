"""Aid deliveries draw from the campaigns they name, exactly once, end to end on the real
nats-server: an AidDelivered appended to an aid store and relayed to the AID stream becomes
the campaign's GoodsDistributed (and a StockShortfallRecorded when the stock is short), in
the transaction that moves the donation consumer's checkpoint. The aid service here is its
store and relay only (donation knows aid by its events)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio
from donation_parts import Donation
from donation_stories import at, campaign_body, produce_body, receipt_body
from harness import parts
from harness.waits import until
from sqlalchemy import func, select

from services.donation.domain import distribution_id_for_delivery
from services.donation.entrypoints.deliveries import CONSUMER, delivery_runner, draw_deliveries
from shared.consumer import ConsumerRunner
from shared.contracts.aid import AidDelivered, AidRequested
from shared.contracts.envelope import Context, NewEvent, uuid7
from shared.contracts.types import AidItem, Place
from shared.eventstore import Append, EventStore
from shared.eventstore.schema import events
from shared.relay import OutboxRelay

pytestmark = pytest.mark.asyncio(loop_scope="session")

NANZHOU = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
WORKER = "worker:w17"


@pytest_asyncio.fixture(loop_scope="session")
async def aid(tmp_path: Path) -> AsyncIterator[EventStore]:
    """The aid service's store (its own SQLite database: what is under test is donation's)."""
    store = await parts.sqlite_store(tmp_path, "aid")
    yield store
    await store.db.dispose()


def delivered(n: int, *items: dict[str, Any], persons: int = 1) -> AidDelivered:
    return AidDelivered(
        request=f"request:{n}",
        delivery=f"delivery:{n}",
        person=f"person:p{n}",
        group="elderly_alone",
        place=NANZHOU,
        items=tuple(AidItem.model_validate(i) for i in items),
        persons_served=persons,
    )


def requested(n: int) -> AidRequested:
    return AidRequested(
        request=f"request:{n}",
        person=f"person:p{n}",
        group="elderly_alone",
        place=NANZHOU,
        needs=("food",),
        urgency="today",
        origin="station_visit",
    )


async def deliver(
    aid: EventStore, donation: Donation, deliveries: list[AidDelivered], ctx: Context | None = None
) -> None:
    """Record each request and its delivery on the aid store, then relay them to AID."""
    appends = [
        Append(d.request, 0, [NewEvent(requested(int(d.request[8:])), at(0)), NewEvent(d, at(90))])
        for d in deliveries
    ]
    await aid.append_all(appends, ctx or Context(actor=WORKER))
    await OutboxRelay(aid, donation.nc, donation.naming).publish_pending()


def meals(quantity: str, campaign: str, value: str | None = None) -> dict[str, Any]:
    return {
        "kind": "meals",
        "quantity": quantity,
        "unit": "meal",
        "value_yuan": value,
        "campaign": campaign,
    }


async def test_a_delivery_naming_campaigns_draws_their_stock_and_records_a_shortfall(
    aid: EventStore, donation: Donation
) -> None:
    lunches = await donation.launch(campaign_body())
    produce = await donation.launch(produce_body())
    await donation.post(f"/campaigns/{lunches}/receipts", receipt_body())  # 500 lunches
    received = await donation.post(
        f"/campaigns/{produce}/receipts",
        receipt_body(items=[{"kind": "vegetables", "quantity": "1", "unit": "kg"}], district=None),
    )
    assert received.status_code == 201, received.text
    correlation = uuid7()
    delivery = delivered(
        0,
        meals("2", lunches, "50.00"),
        {"kind": "vegetables", "quantity": "1.5", "unit": "kg", "campaign": produce},
        {"kind": "medicine", "quantity": "1", "unit": "box"},  # bought, from no campaign
        {"kind": "escort", "quantity": "1", "unit": "trip"},
        persons=2,
    )
    await deliver(aid, donation, [delivery], Context(WORKER, correlation))
    [_, aid_event] = await aid.load("request:0")

    runner = delivery_runner(donation.nc, donation.service.store, donation.naming)
    await runner.setup()
    assert await runner.drain("aid") == 1  # the AidRequested stayed on the server (filter)

    assert await donation.stock(lunches) == {("meals", "meal"): "498"}
    assert await donation.stock(produce) == {("vegetables", "kg"): "0"}
    events = [e for e in await donation.published() if e["actor"] == "service:donation"]
    assert sorted((e["type"], e["stream_id"]) for e in events) == [
        ("GoodsDistributed", lunches),
        ("GoodsDistributed", produce),
        ("StockShortfallRecorded", produce),
    ]
    for event in events:
        assert UUID(event["causation_id"]) == aid_event.event_id
        assert UUID(event["correlation_id"]) == correlation
        assert event["occurred_at"] == at(90).isoformat()
        data = event["data"]
        assert (data["delivery"], data["district"], data["station"], data["group"]) == (
            "delivery:0",
            "haizhu",
            "station:nanzhou",
            "elderly_alone",
        )
        assert data["organisation"] and data["campaign_kind"] == "charity"
    lunch = next(e["data"] for e in events if e["stream_id"] == lunches)
    assert lunch["distribution"] == distribution_id_for_delivery("delivery:0", lunches)
    assert lunch["items"] == [
        {"kind": "meals", "quantity": "2", "unit": "meal", "value_yuan": "50.00"}
    ]
    assert (lunch["recipient_kind"], lunch["recipients"]) == ("people", 2)
    short = next(e["data"] for e in events if e["type"] == "StockShortfallRecorded")
    assert (short["requested"], short["drawn"], short["short"]) == ("1.5", "1", "0.5")
    assert runner.stats["aid"].dead_letters == 0


async def test_killed_and_restarted_mid_way_each_delivery_draws_once(
    aid: EventStore, donation: Donation
) -> None:
    """600 deliveries of 2 lunches each against 500 lunches in stock, while a station keeps
    recording receipts over HTTP: the consumer (a process) is killed inside a batch,
    restarted, then everything is redelivered, then read again by a consumer that lost its
    checkpoint."""
    campaign = await donation.launch(campaign_body())
    await donation.post(f"/campaigns/{campaign}/receipts", receipt_body())
    count = 600
    await deliver(aid, donation, [delivered(n, meals("2", campaign)) for n in range(count)])

    handler = draw_deliveries(donation.service.store)

    def runner(name: str = CONSUMER) -> ConsumerRunner:
        return ConsumerRunner(
            nc=donation.nc,
            db=donation.service.db,
            naming=donation.naming,
            name=name,
            sources=["aid"],
            event_types=["AidDelivered"],
            handler=handler,
            batch=100,
        )

    receipts = 0
    closing = asyncio.Event()

    async def station_keeps_receiving() -> None:
        nonlocal receipts
        # Stopped between requests, never cancelled inside one: a task cancelled inside an
        # SQLite write transaction can leave the database locked (see the session's report).
        while not closing.is_set():
            response = await donation.post(
                f"/campaigns/{campaign}/receipts",
                receipt_body(items=[{"kind": "meals", "quantity": "10", "unit": "meal"}]),
            )
            assert response.status_code == 201, response.text
            receipts += 1
            await asyncio.sleep(0.01)

    # The first consumer is a process of its own, killed with SIGKILL inside a batch.
    first = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("consumer_process.py")),
        donation.nc.connected_url.geturl(),
        donation.naming.root,
        donation.naming.stream_prefix,
        str(donation.service.db.url.render_as_string(hide_password=False)),
        stderr=asyncio.subprocess.PIPE,
    )
    station = asyncio.create_task(station_keeps_receiving())

    async def drew_200() -> bool:
        assert first.returncode is None, (await first.stderr.read()).decode()  # type: ignore[union-attr]
        return await drawn_in_store(donation) >= 200

    await until("the consumer process drew 200", drew_200, 60, every=0.005)
    first.kill()  # killed mid-batch: that batch's draws and checkpoint never commit
    await first.wait()
    drawn_so_far = await draws(donation)
    assert 0 < len(drawn_so_far) < count

    second = runner()
    await second.setup()
    await second.drain("aid")
    closing.set()
    await station
    assert second.stats["aid"].dead_letters == 0
    assert 0 < second.stats["aid"].applied < count

    per_delivery = await draws(donation)
    assert set(per_delivery) == {f"delivery:{n}" for n in range(count)}
    for delivery, (taken, short, recorded) in per_delivery.items():
        assert taken + short == 2, delivery  # each delivery drew once: nothing more, nothing less
        assert recorded == (taken > 0) + (short > 0), delivery
    received = 500 + 10 * receipts
    total_taken = sum(t for t, _, _ in per_delivery.values())
    stock = await donation.stock(campaign)
    assert Decimal(stock[("meals", "meal")]) == received - total_taken >= 0

    # Everything redelivered (acks lost): skipped by the checkpoint.
    js = donation.nc.jetstream()
    stream = donation.naming.stream("aid")
    await js.delete_consumer(stream, CONSUMER)
    await js.add_consumer(stream, second._consumer_config(1, "aid"))
    third = runner()
    await third.setup()
    await third.drain("aid")
    assert third.stats["aid"].applied == 0
    before = await donation.stored()

    # A consumer with no checkpoint at all (a restored database) draws nothing twice either:
    # the campaign remembers the deliveries that drew on it.
    stranger = runner(name="donation-deliveries-fresh")
    await stranger.setup()
    assert await stranger.drain("aid") == count
    assert await donation.stored() == before
    assert await draws(donation) == per_delivery
    published = await donation.published()
    assert len(published) == before


async def drawn_in_store(donation: Donation) -> int:
    async with donation.service.db.read() as conn:
        return int(
            await conn.scalar(
                select(func.count()).where(
                    events.c.type.in_(["GoodsDistributed", "StockShortfallRecorded"])
                )
            )
            or 0
        )


async def draws(donation: Donation) -> dict[str, tuple[Decimal, Decimal, int]]:
    """delivery → (quantity drawn, quantity short, events), from the DONATION stream."""
    found: dict[str, tuple[Decimal, Decimal, int]] = {}
    for event in await donation.published():
        data = event["data"]
        if event["type"] == "GoodsDistributed" and data["delivery"]:
            taken, short, n = found.get(data["delivery"], (Decimal(0), Decimal(0), 0))
            quantity = sum(Decimal(i["quantity"]) for i in data["items"])
            found[data["delivery"]] = (taken + quantity, short, n + 1)
        elif event["type"] == "StockShortfallRecorded":
            taken, short, n = found.get(data["delivery"], (Decimal(0), Decimal(0), 0))
            found[data["delivery"]] = (taken, short + Decimal(data["short"]), n + 1)
    return found
