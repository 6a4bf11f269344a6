"""Who may do what at the hotline: each role's allowed and refused, over HTTP and NATS, and
what a browser could be made to send. The service runs on real parts (tests/hotline/conftest);
its gate knows the tokens each story issues (harness/signin)."""

from __future__ import annotations

import httpx
import orjson
import pytest
from harness import signin
from hotline_parts import Hotline
from hotline_stories import NANZHOU, at, call_body, place

from services.hotline.entrypoints.http import build_hotline_app
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

SHAHE = {**place(), "district": "tianhe", "street": "沙河街", "station": "station:shahe"}


async def open_point(hotline: Hotline, where: dict[str, str] | None = None) -> str:
    opened = await hotline.post(
        "/points", {"place": where or place(), "opened_at": at(0).isoformat()}
    )
    assert opened.status_code == 201, opened.text
    return str(opened.json()["point"])


def worker_at(hotline: Hotline, station: str = NANZHOU.station) -> dict[str, str]:
    return hotline.as_actor("worker:w17", "station-worker", station=station)


async def test_a_station_worker_records_at_their_station_and_nowhere_else(hotline: Hotline) -> None:
    ours, theirs = await open_point(hotline), await open_point(hotline, SHAHE)
    worker = worker_at(hotline)
    stored = await hotline.stored()

    recorded = await hotline.post("/calls", call_body(ours), **worker)
    refused = await hotline.post("/calls", call_body(theirs), **worker)

    assert recorded.status_code == 201, recorded.text
    assert refused.status_code == 403
    assert refused.json()["rule"] == "outside_scope"
    assert (
        "station:shahe" in refused.json()["error"] and "station:nanzhou" in refused.json()["error"]
    )
    assert await hotline.stored() == stored + 1  # the refused call left nothing
    # A day's log with one call at another station is refused whole.
    batch = {"items": [call_body(ours), call_body(theirs)]}
    assert (await hotline.post("/calls:batch", batch, **worker)).status_code == 403
    assert await hotline.stored() == stored + 1


async def test_a_station_worker_reads_their_station_s_records_only(hotline: Hotline) -> None:
    ours, theirs = await open_point(hotline), await open_point(hotline, SHAHE)
    worker = worker_at(hotline)

    assert (await hotline.http.get(f"/points/{ours}", headers=worker)).status_code == 200
    refused = await hotline.http.get(f"/points/{theirs}", headers=worker)
    assert (refused.status_code, refused.json()["rule"]) == (403, "outside_scope")


async def test_voiding_is_for_coordinators_of_the_district(hotline: Hotline) -> None:
    point = await open_point(hotline)
    call = (await hotline.post("/calls", call_body(point))).json()["call"]
    void = {"reason": "logged twice"}

    by_worker = await hotline.post(f"/calls/{call}/void", void, **worker_at(hotline))
    elsewhere = hotline.as_actor("worker:c2", "coordinator", district="tianhe")
    by_other_district = await hotline.post(f"/calls/{call}/void", void, **elsewhere)
    coordinator = hotline.as_actor("worker:c1", "coordinator", district="haizhu")
    by_coordinator = await hotline.post(f"/calls/{call}/void", void, **coordinator)

    assert (by_worker.status_code, by_worker.json()["rule"]) == (403, "role_may_not_correct")
    assert (by_other_district.status_code, by_other_district.json()["rule"]) == (
        403,
        "outside_scope",
    )
    assert by_coordinator.status_code == 200, by_coordinator.text
    void_event = [e for e in await hotline.published() if e["type"] == "CallVoided"]
    assert [e["actor"] for e in void_event] == ["worker:c1"]


@pytest.mark.parametrize(
    ("role", "records", "reads"),
    [("auditor", 403, 200), ("ops", 403, 403), ("administrator", 201, 200)],
)
async def test_what_the_other_roles_may_do(
    hotline: Hotline, role: str, records: int, reads: int
) -> None:
    point = await open_point(hotline)
    headers = signin.bearer(hotline.grant(role))

    recorded = await hotline.post("/calls", call_body(point), **headers)
    read = await hotline.http.get(f"/points/{point}", headers=headers)

    assert (recorded.status_code, read.status_code) == (records, reads)
    if records == 403:
        assert recorded.json()["rule"] == "role_may_not_record"


async def test_no_token_a_bad_one_or_a_revoked_one_is_refused_with_401(hotline: Hotline) -> None:
    point = await open_point(hotline)
    token = hotline.grant("administrator")
    stored = await hotline.stored()
    record = hotline.gate.registry.records[token.split("_")[1]]  # type: ignore[union-attr]
    hotline.gate.registry.records[record.id] = record.revoked(at(0))  # type: ignore[union-attr]

    answers = [
        await hotline.post("/calls", call_body(point), Authorization=""),
        await hotline.post("/calls", call_body(point), Authorization="Basic dXNlcjpwYXNz"),
        await hotline.post(
            "/calls", call_body(point), Authorization="Bearer kapok_nope_" + "x" * 40
        ),
        await hotline.post("/calls", call_body(point), **signin.bearer(token)),
        await hotline.post("/calls", call_body(point), **signin.bearer(token[:-1] + "A")),
    ]

    assert [a.status_code for a in answers] == [401] * 5
    assert all(a.headers["WWW-Authenticate"] == "Bearer" for a in answers)
    assert all(a.json()["field"] == "Authorization" for a in answers)
    assert "revoked" in answers[3].json()["error"]
    assert token not in str([a.text for a in answers])  # a refusal never echoes the token
    assert await hotline.stored() == stored


async def test_a_forged_actor_header_is_ignored(hotline: Hotline) -> None:
    point = await open_point(hotline)
    signed_in = hotline.as_actor("worker:w17")

    await hotline.post("/calls", call_body(point), **{**signed_in, "Kapok-Actor": "worker:boss"})

    [call] = [e for e in await hotline.published() if e["type"] == "CallReceived"]
    assert call["actor"] == "worker:w17"


async def test_a_command_sent_as_anything_but_json_is_refused_and_nothing_stored(
    hotline: Hotline,
) -> None:
    """A page on another site can make a browser send a text/plain or form POST without asking
    first; a JSON one needs the service's consent (CORS), which it does not give."""
    point = await open_point(hotline)
    stored = await hotline.stored()
    body = orjson.dumps(call_body(point))

    answers = [
        await hotline.http.post("/calls", content=body, headers={"Content-Type": kind})
        for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
    ]

    assert [a.status_code for a in answers] == [415] * 3
    assert answers[0].json()["field"] == "Content-Type"
    assert await hotline.stored() == stored
    utf8 = await hotline.http.post(
        "/calls", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert utf8.status_code == 201


async def test_a_host_it_does_not_serve_is_refused_and_cors_is_off(hotline: Hotline) -> None:
    """DNS rebinding: a page whose name resolves to 127.0.0.1 still names its own host."""
    rebound = await hotline.http.get("/points/point:x", headers={"Host": "evil.example:8001"})
    assert (rebound.status_code, rebound.json()["field"]) == (400, "Host")

    preflight = await hotline.http.options(
        "/calls",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


async def test_an_origin_configured_for_cors_is_allowed_and_no_other(
    hotline: Hotline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAPOK_CORS_ORIGINS", "https://dashboard.example")
    app = build_hotline_app(hotline.service, hotline.gate)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as http:
        asking = {"Access-Control-Request-Method": "POST"}
        ours = await http.options(
            "/calls", headers={"Origin": "https://dashboard.example", **asking}
        )
        theirs = await http.options("/calls", headers={"Origin": "https://evil.example", **asking})
    assert ours.headers["access-control-allow-origin"] == "https://dashboard.example"
    assert "access-control-allow-origin" not in theirs.headers
    assert Settings().cors_origins == ("https://dashboard.example",)


async def test_over_nats_the_same_refusals(hotline: Hotline) -> None:
    ours, theirs = await open_point(hotline), await open_point(hotline, SHAHE)
    worker = worker_at(hotline)

    unsigned = await hotline.request("ReceiveCall", call_body(ours), Authorization="")
    outside = await hotline.request("ReceiveCall", call_body(theirs), **worker)
    inside = await hotline.request("ReceiveCall", call_body(ours), **worker)

    assert (unsigned["status"], unsigned["field"]) == (401, "Authorization")
    assert (outside["status"], outside["rule"]) == (403, "outside_scope")
    assert inside["status"] == 201


async def test_the_openapi_document_declares_the_bearer_scheme(hotline: Hotline) -> None:
    document = (await hotline.http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["security"] == [{"bearer": []}]
    operation = document["paths"]["/calls"]["post"]
    assert {"401", "403", "415"} <= set(operation["responses"])
    assert "Kapok-Actor" not in orjson.dumps(document).decode()
