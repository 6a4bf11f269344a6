"""What the hotline's HTTP API refuses before anything is read or stored, in Kapok's error shape:
a body over the limit (413), a route or method it does not have (404, 405), a call no one
could have made (422 naming the field and the bound) — docs/bounds.md."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from harness import databases
from hotline_parts import Hotline
from hotline_stories import at, call_body, place

from shared.settings import Settings


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Bounds are checked before any database is read: SQLite alone is enough."""
    return databases.sqlite_url(tmp_path)


async def test_a_body_over_the_limit_is_413_before_it_is_read(hotline: Hotline) -> None:
    limit = Settings().max_body_bytes
    stored = await hotline.stored()
    point = await hotline.post("/points", {"place": place(), "opened_at": at(0).isoformat()})
    body = orjson.dumps({"items": [call_body(point.json()["point"])] * (limit // 150)})
    assert len(body) > limit

    said = await hotline.http.post("/calls:batch", content=body)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for start in range(0, len(body), 1 << 20):
            yield body[start : start + (1 << 20)]

    streamed = await hotline.http.post("/calls:batch", content=chunks())

    for refused in (said, streamed):  # by its Content-Length, and as a chunked body arrives
        assert refused.status_code == 413, refused.text
        assert refused.json() == {
            "status": 413,
            "error": f"the body is over {limit} bytes (KAPOK_MAX_BODY_BYTES)",
            "field": "body",
        }
    assert await hotline.stored() == stored + 1


async def test_unknown_routes_and_methods_answer_in_kapoks_error_shape(hotline: Hotline) -> None:
    nowhere = await hotline.http.get("/nowhere")
    assert nowhere.status_code == 404
    assert nowhere.json() == {"status": 404, "error": "not found", "resource": "/nowhere"}

    wrong = await hotline.http.get("/calls:batch")
    assert wrong.status_code == 405
    assert wrong.json() == {"status": 405, "error": "method not allowed"}
    assert wrong.headers["allow"] == "POST"


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"received_at": "0006-02-10T09:00:00+08:00"}, "received_at", "start of records"),
        ({"received_at": "9916-02-10T09:00:00+08:00"}, "received_at", "future"),
        ({"outcome": "advice_given", "duration_seconds": 86_401}, "duration_seconds", "86400"),
        ({"outcome": "advice_given", "duration_seconds": -1}, "duration_seconds", "0"),
        ({"outcome": "advice_given", "duration_seconds": "60"}, "duration_seconds", "integer"),
        ({"caller": "person:卫姨"}, "caller", "pattern"),
    ],
)
async def test_a_call_no_one_could_have_made_is_refused_naming_the_bound(
    hotline: Hotline, change: dict[str, object], field: str, said: str
) -> None:
    point = await hotline.post("/points", {"place": place(), "opened_at": at(0).isoformat()})
    stored = await hotline.stored()

    refused = await hotline.post(
        "/calls:batch", {"items": [call_body(point.json()["point"], **change)]}
    )

    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == f"items.0.{field}"
    assert said in refused.json()["error"]
    assert await hotline.stored() == stored
