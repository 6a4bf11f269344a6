"""Hotline referrals become aid requests exactly once, end to end on the real nats-server:
a ReferredToAid appended to a hotline store and relayed to the HOTLINE stream is opened as an
aid request by the aid consumer, in the transaction that moves its checkpoint. The hotline
here is its store and relay only (the aid service knows the hotline by its events)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import pytest_asyncio
from aid_parts import Aid
from aid_stories import NANZHOU, WEI_YI, WORKER, at, delivery_body
from harness import parts
from harness.waits import until
from sqlalchemy import func, select

from services.aid.domain import request_id_for_referral
from services.aid.entrypoints.referrals import CONSUMER, open_requests, referral_runner
from shared.consumer import ConsumerRunner
from shared.contracts.envelope import Context, NewEvent, uuid7
from shared.contracts.hotline import CallReceived, ReferredToAid
from shared.eventstore import Append, EventStore
from shared.eventstore.schema import events
from shared.relay import OutboxRelay

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def hotline(tmp_path: Path) -> AsyncIterator[EventStore]:
    """The hotline's store (its own SQLite database: what is under test is aid's)."""
    store = await parts.sqlite_store(tmp_path, "hotline")
    yield store
    await store.db.dispose()


def referred(n: int, **changes: Any) -> ReferredToAid:
    fields: dict[str, Any] = {
        "referral": f"referral:{n}",
        "call": f"call:{n}",
        "point": "point:nanzhou-1",
        "person": WEI_YI if n == 0 else f"person:p{n}",
        "group": "disabled",
        "place": NANZHOU,
        "needs": ("medicine", "food"),
        "urgency": "today",
        **changes,
    }
    return ReferredToAid(**fields)


async def refer(
    hotline: EventStore, aid: Aid, referrals: list[ReferredToAid], ctx: Context | None = None
) -> None:
    """Record the referrals on the hotline (one per stream) and relay them to HOTLINE."""
    appends = [Append(r.referral, 0, [NewEvent(r, at(10))]) for r in referrals]
    await hotline.append_all(appends, ctx or Context(actor=WORKER))
    await OutboxRelay(hotline, aid.nc, aid.naming).publish_pending()


async def aid_requests(aid: Aid) -> dict[str, int]:
    """stream → how many AidRequested it holds, from the aid store."""
    async with aid.service.db.read() as conn:
        result = await conn.execute(
            select(events.c.stream_id, func.count())
            .where(events.c.type == "AidRequested")
            .group_by(events.c.stream_id)
        )
        return {str(s): int(c) for s, c in result}


async def test_a_referral_made_on_the_hotline_shows_up_as_an_open_aid_request(
    hotline: EventStore, aid: Aid
) -> None:
    call_correlation = uuid7()
    # A call (not for aid: the consumer's filter leaves it on the server) then the referral.
    received = CallReceived(
        call="call:0",
        point="point:nanzhou-1",
        place=NANZHOU,
        category="help_request",
        group="disabled",
        channel="phone",
        caller=WEI_YI,
    )
    await hotline.append("call:0", 0, [NewEvent(received, at(5))], Context(WORKER))
    await refer(hotline, aid, [referred(0)], Context(WORKER, call_correlation))
    [referral_event] = [e for e in await hotline.load("referral:0")]

    runner = referral_runner(aid.nc, aid.service.store, aid.naming)
    await runner.setup()
    assert await runner.drain("hotline") == 1

    missing = await aid.http.get("/referrals/referral:1/request")
    assert missing.status_code == 404 and missing.json()["resource"] == "referral:1"
    request = request_id_for_referral("referral:0")
    state = (await aid.http.get(f"/requests/{request}")).json()
    assert (await aid.http.get("/referrals/referral:0/request")).json() == state
    asked = [("referral", "referral:1"), ("referral", "referral:0")]
    both = await aid.http.get("/requests", params=asked)
    assert both.json() == {"requests": [state], "missing": ["referral:1"]}
    none = await aid.http.get("/requests")
    assert (none.status_code, none.json()["field"]) == (422, "referral")
    assert state["status"] == "requested"
    assert (state["origin"], state["referral"], state["person"]) == (
        "hotline_referral",
        "referral:0",
        WEI_YI,
    )
    assert state["place"] == NANZHOU.model_dump() and state["needs"] == ["medicine", "food"]
    [opened] = await aid.published()
    assert opened["type"] == "AidRequested" and opened["stream_id"] == request
    assert UUID(opened["causation_id"]) == referral_event.event_id
    assert UUID(opened["correlation_id"]) == call_correlation
    assert opened["actor"] == "service:aid"
    assert opened["occurred_at"] == at(10).isoformat()


async def test_killed_and_restarted_mid_way_the_consumer_opens_one_request_per_referral(
    hotline: EventStore, aid: Aid
) -> None:
    count = 600
    await refer(hotline, aid, [referred(n) for n in range(count)])
    opened: list[int] = []

    async def slow(conn: Any, batch: Any) -> None:
        await handler(conn, batch)
        opened.append(len(batch))
        await asyncio.sleep(0.05)  # so the kill lands inside a batch's transaction

    handler = open_requests(aid.service.store)
    first = ConsumerRunner(
        nc=aid.nc,
        db=aid.service.db,
        naming=aid.naming,
        name=CONSUMER,
        sources=["hotline"],
        event_types=["ReferredToAid"],
        handler=slow,
        batch=40,
    )
    await first.setup()
    task = asyncio.create_task(first.run())
    await until("200 requests opened", lambda: sum(opened) >= 200, every=0.005)
    task.cancel()  # killed mid-batch: that batch's requests and checkpoint never commit
    await asyncio.gather(task, return_exceptions=True)
    assert 0 < len(await aid_requests(aid)) < count

    second = referral_runner(aid.nc, aid.service.store, aid.naming, batch=100)
    await second.setup()
    await second.drain("hotline")

    requests = await aid_requests(aid)
    assert requests == {request_id_for_referral(f"referral:{n}"): 1 for n in range(count)}

    # Everything redelivered (acks lost) and a duplicate referral published again: skipped.
    js = aid.nc.jetstream()
    await js.delete_consumer(aid.naming.stream("hotline"), CONSUMER)
    await js.add_consumer(aid.naming.stream("hotline"), second._consumer_config(1, "hotline"))
    third = referral_runner(aid.nc, aid.service.store, aid.naming)
    await third.setup()
    await third.drain("hotline")
    assert third.stats["hotline"].applied == 0
    assert await aid_requests(aid) == requests

    # Even a consumer with no checkpoint at all (a restored database) opens nothing twice:
    # the request's id is derived from the referral and its stream already exists.
    stranger = ConsumerRunner(
        nc=aid.nc,
        db=aid.service.db,
        naming=aid.naming,
        name="aid-referrals-fresh",
        sources=["hotline"],
        event_types=["ReferredToAid"],
        handler=handler,
    )
    await stranger.setup()
    assert await stranger.drain("hotline") == count
    assert await aid_requests(aid) == requests
    assert len(await aid.published()) == count


async def test_wei_yi_from_her_call_to_her_door(hotline: EventStore, aid: Aid) -> None:
    """卫姨 phones 南洲街社工站; the worker refers her for medicine she cannot fetch; aid opens
    the request, a worker takes it, buys medicine and fresh vegetables and brings them to her
    door. An auditor follows it from the call to the delivery on the buses' envelopes."""
    call_correlation = uuid7()
    await refer(hotline, aid, [referred(0)], Context(WORKER, call_correlation))
    runner = referral_runner(aid.nc, aid.service.store, aid.naming)
    await runner.setup()
    await runner.drain("hotline")
    request = request_id_for_referral("referral:0")

    assigned = await aid.post(
        f"/requests/{request}/assign", {"assignee": WORKER, "assigned_at": at(20).isoformat()}
    )
    assert assigned.status_code == 200, assigned.text
    delivered = await aid.post(
        f"/requests/{request}/deliveries", delivery_body(90), **aid.as_actor(WORKER)
    )
    assert delivered.status_code == 201, delivered.text
    assert (await aid.http.get(f"/requests/{request}")).json()["status"] == "delivered"

    story = await aid.published()
    assert [(e["type"], e["stream_id"]) for e in story] == [
        ("AidRequested", request),
        ("AidAssigned", request),
        ("AidDelivered", request),
    ]
    requested, _, door = story
    [referral_event] = await hotline.load("referral:0")
    assert UUID(requested["causation_id"]) == referral_event.event_id
    assert UUID(requested["correlation_id"]) == call_correlation == referral_event.correlation_id
    assert requested["data"]["referral"] == "referral:0"
    # The whole flow under the call's correlation id: the call, the referral, the request,
    # the courier's assignment and the delivery at her door.
    assert {UUID(e["correlation_id"]) for e in story} == {call_correlation}
    assert door["data"]["person"] == WEI_YI and door["data"]["group"] == "disabled"
    assert [i["kind"] for i in door["data"]["items"]] == ["medicine", "vegetables"]
    assert door["data"]["persons_served"] == 1
    assert door["data"]["place"]["station"] == "station:nanzhou"
