"""Business time: a record is refused only if it is dated outside what it belongs to, whenever
it arrives (a station's log may come days late), and a point's closure is never dated before
a record already made there (docs/bounds.md)."""

from __future__ import annotations

from hotline_parts import Hotline
from hotline_stories import WORKER, at, call_body, place


async def a_point(hotline: Hotline) -> str:
    opened = await hotline.post("/points", {"place": place(), "opened_at": at(0).isoformat()})
    assert opened.status_code == 201, opened.text
    return str(opened.json()["point"])


async def close(hotline: Hotline, point: str, minute: int) -> dict[str, object]:
    closing = {"reason": "service_ended", "closed_at": at(minute).isoformat()}
    closed = await hotline.post(f"/points/{point}/close", closing)
    return {**closed.json(), "http": closed.status_code}


async def test_a_late_log_dated_before_the_closure_is_taken_one_dated_after_is_not(
    hotline: Hotline,
) -> None:
    # Given a point open from 09:00 and closed at 18:00 (minute 540)
    point = await a_point(hotline)
    assert (await close(hotline, point, 540))["http"] == 200
    stored = await hotline.stored()

    # When the station's log of a call at 17:00 arrives after the closure, then it is taken
    late = await hotline.post("/calls", call_body(point, 480))
    assert late.status_code == 201, late.text
    assert await hotline.stored() == stored + 1

    # When a call dated 18:30 arrives, then it is refused and nothing is stored
    after = await hotline.post("/calls", call_body(point, 570))
    assert after.status_code == 409, after.text
    assert after.json()["rule"] == "closed_point_takes_no_calls"
    shift = {"point": point, "worker": WORKER, "started_at": at(600).isoformat()}
    assert (await hotline.post("/shifts", shift)).json()["rule"] == "closed_point_takes_no_shifts"
    assert await hotline.stored() == stored + 1


async def test_a_closure_dated_before_a_record_made_there_is_refused_naming_it(
    hotline: Hotline,
) -> None:
    # Given a point with a call at 17:45 (minute 525)
    point = await a_point(hotline)
    call = (await hotline.post("/calls", call_body(point, 525))).json()["call"]
    stored = await hotline.stored()

    # When the point is closed at 17:30, then 409 names the call and nothing is stored
    early = await close(hotline, point, 510)
    assert (early["http"], early["rule"]) == (409, "point_closes_after_its_records")
    assert call in str(early["error"])
    assert await hotline.stored() == stored

    # When it is closed at 18:00, after its last record, then it closes
    assert (await close(hotline, point, 540))["http"] == 200


async def test_a_days_log_straddling_the_closure_is_refused_whole(hotline: Hotline) -> None:
    point = await a_point(hotline)
    assert (await close(hotline, point, 540))["http"] == 200
    stored = await hotline.stored()

    log = {"items": [call_body(point, 500), call_body(point, 550)]}
    refused = await hotline.post("/calls:batch", log)

    assert refused.status_code == 409, refused.text
    assert refused.json()["rule"] == "closed_point_takes_no_calls"
    assert refused.json()["error"].startswith("items.1: ")
    assert await hotline.stored() == stored


async def test_nothing_is_dated_before_the_point_opened_nor_closes_before_it(
    hotline: Hotline,
) -> None:
    point = await a_point(hotline)
    stored = await hotline.stored()

    before = await hotline.post("/calls", call_body(point, -10))
    assert (before.status_code, before.json()["rule"]) == (409, "point_takes_calls_once_open")
    closing = await close(hotline, point, -10)
    assert (closing["http"], closing["rule"]) == (409, "point_closes_after_it_opens")
    assert await hotline.stored() == stored


async def test_a_call_corrected_after_the_closure_keeps_to_its_own_time(hotline: Hotline) -> None:
    # Given a call at 17:00 at a point closed at 18:00
    point = await a_point(hotline)
    call = (await hotline.post("/calls", call_body(point, 480))).json()["call"]
    assert (await close(hotline, point, 540))["http"] == 200

    # When it is corrected to 17:10, then it is; to 18:10, then the closure refuses it
    fixed = await hotline.post(
        f"/calls/{call}/correct", {**call_body(point, 490), "reason": "time"}
    )
    assert fixed.status_code == 200, fixed.text
    stored = await hotline.stored()
    late = await hotline.post(f"/calls/{call}/correct", {**call_body(point, 550), "reason": "time"})
    assert (late.status_code, late.json()["rule"]) == (409, "closed_point_takes_no_calls")
    assert await hotline.stored() == stored


async def test_a_shift_left_open_for_more_than_a_week_is_not_ended_but_voided(
    hotline: Hotline,
) -> None:
    point = await a_point(hotline)
    started = {"point": point, "worker": WORKER, "started_at": at(0).isoformat()}
    shift = (await hotline.post("/shifts", started)).json()["shift"]
    stored = await hotline.stored()

    eight_days = {"ended_at": at(8 * 1440).isoformat()}
    refused = await hotline.post(f"/shifts/{shift}/end", eight_days)

    assert (refused.status_code, refused.json()["rule"]) == (409, "shift_lasts_at_most_a_week")
    assert await hotline.stored() == stored
