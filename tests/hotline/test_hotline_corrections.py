"""Corrections on real parts, told as stories: given a call (or a follow-up, a shift, a
referral) recorded by mistake, when it is voided or corrected over HTTP or NATS, then the
void is one more event on its own stream and history keeps both; voiding twice is 409,
voiding what does not exist 404, and neither stores anything."""

from __future__ import annotations

from typing import Any

import pytest
from hotline_parts import Hotline
from hotline_stories import WEI_YI, WORKER, at, call_body, place

pytestmark = pytest.mark.asyncio(loop_scope="session")
COORDINATOR = "worker:coordinator-1"


async def given_a_call(hotline: Hotline) -> tuple[str, str]:
    point = (
        await hotline.post("/points", {"place": place(), "opened_at": at(0).isoformat()})
    ).json()["point"]
    call = await hotline.post(
        "/calls:batch",
        {"items": [{**call_body(point, 5), "outcome": "advice_given", "duration_seconds": 300}]},
    )
    assert call.status_code == 201, call.text
    return point, str(call.json()["calls"][0])


def of(events: list[dict[str, Any]], stream: str) -> list[dict[str, Any]]:
    return [e for e in events if e["stream_id"] == stream]


async def test_a_call_logged_twice_is_voided_and_history_keeps_both(hotline: Hotline) -> None:
    _, call = await given_a_call(hotline)

    voided = await hotline.post(
        f"/calls/{call}/void",
        {"reason": "logged twice", "voided_at": at(60).isoformat()},
        **hotline.as_actor(COORDINATOR),
    )

    assert voided.status_code == 200, voided.text
    assert voided.json() == {"call": call, "voided": "logged twice", "version": 3}
    shown = await hotline.http.get(f"/calls/{call}")
    assert shown.json() == voided.json()
    events = of(await hotline.published(), call)
    assert [e["type"] for e in events] == ["CallReceived", "CallCompleted", "CallVoided"]
    void = events[-1]
    assert void["actor"] == "worker:coordinator-1"
    assert void["data"]["reason"] == "logged twice"
    assert [r["event"] for r in void["data"]["voided"]] == [e["data"] for e in events[:2]]
    assert [r["at"] for r in void["data"]["voided"]] == [e["occurred_at"] for e in events[:2]]
    assert void["data"]["replacement"] == []


async def test_voiding_twice_is_409_and_voiding_nothing_404_over_http_and_nats(
    hotline: Hotline,
) -> None:
    _, call = await given_a_call(hotline)
    assert (await hotline.post(f"/calls/{call}/void", {"reason": "never happened"})).is_success
    stored = await hotline.stored()

    again = await hotline.post(f"/calls/{call}/void", {"reason": "never happened"})
    by_nats = await hotline.request("VoidCall", {"call": call, "reason": "never happened"})
    missing = await hotline.post("/calls/call:nobody/void", {"reason": "never happened"})
    missing_by_nats = await hotline.request(
        "VoidCall", {"call": "call:nobody", "reason": "never happened"}
    )
    complete = await hotline.post(
        f"/calls/{call}/complete",
        {"outcome": "advice_given", "duration_seconds": 1, "completed_at": at(90).isoformat()},
    )

    assert (again.status_code, again.json()["rule"]) == (409, "a_fact_is_voided_once")
    assert (by_nats["status"], by_nats["rule"]) == (409, "a_fact_is_voided_once")
    assert (missing.status_code, missing.json()["resource"]) == (404, "call:nobody")
    assert missing_by_nats["status"] == 404
    assert complete.status_code == 409  # a voided call takes no more changes
    assert await hotline.stored() == stored


async def test_a_call_corrected_is_voided_and_recorded_again_in_one_append(
    hotline: Hotline,
) -> None:
    # Logged as a help request at 09:05; it was emotional support, at 09:20.
    point, call = await given_a_call(hotline)

    corrected = await hotline.post(
        f"/calls/{call}/correct",
        {
            **call_body(point, 20, category="emotional_support"),
            "outcome": "advice_given",
            "duration_seconds": 600,
            "reason": "wrong category and time",
        },
        **hotline.as_actor(COORDINATOR),
    )

    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["category"] == "emotional_support"
    assert corrected.json()["received_at"] == at(20).isoformat()
    (void,) = [e for e in of(await hotline.published(), call) if e["type"] == "CallVoided"]
    assert [r["event"]["category"] for r in void["data"]["replacement"]] == [
        "emotional_support",
        "emotional_support",
    ]
    # the correction is checked by the rules of a record: a call before its point opened
    too_early = await hotline.post(
        f"/calls/{call}/correct",
        {**call_body(point, -30), "reason": "wrong time"},
    )
    assert too_early.status_code == 409, too_early.text
    assert too_early.json()["rule"] == "point_takes_calls_once_open"


async def test_a_follow_up_a_shift_and_a_referral_are_voided(hotline: Hotline) -> None:
    point, call = await given_a_call(hotline)
    shift = (
        await hotline.post(
            "/shifts", {"point": point, "worker": WORKER, "started_at": at(1).isoformat()}
        )
    ).json()["shift"]
    follow_up = (
        await hotline.post(
            "/follow-ups",
            {
                "person": WEI_YI,
                "group": "disabled",
                "point": point,
                "category": "emotional_support",
                "due_at": at(60 * 24).isoformat(),
                "scheduled_at": at(15).isoformat(),
            },
        )
    ).json()["follow_up"]
    referral = (
        await hotline.post(
            f"/calls/{call}/referrals",
            {"needs": ["medicine"], "urgency": "today", "referred_at": at(10).isoformat()},
        )
    ).json()["referral"]

    for path in (f"/shifts/{shift}", f"/follow-ups/{follow_up}", f"/referrals/{referral}"):
        response = await hotline.post(f"{path}/void", {"reason": "wrong station"})
        assert response.status_code == 200, (path, response.text)

    types = {e["stream_id"]: e["type"] for e in await hotline.published()}
    assert (types[shift], types[follow_up], types[referral]) == (
        "ShiftVoided",
        "FollowUpVoided",
        "ReferralVoided",
    )
    # the worker of the voided open shift is free to start another
    again = await hotline.post(
        "/shifts", {"point": point, "worker": WORKER, "started_at": at(30).isoformat()}
    )
    assert again.status_code == 201, again.text
