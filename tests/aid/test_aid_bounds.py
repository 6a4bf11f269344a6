"""What the aid service refuses before anything is read or stored: a delivery no one could
have made, a look-up of something that is not a reference (docs/bounds.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aid_parts import Aid
from aid_stories import MEDICINE, delivery_body, request_body
from harness import databases


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Bounds are checked before any database is read: SQLite alone is enough."""
    return databases.sqlite_url(tmp_path)


@pytest.mark.parametrize(
    ("change", "field", "said"),
    [
        ({"persons_served": 10_001}, "persons_served", "10000"),
        ({"items": [{**MEDICINE, "quantity": "1e30"}]}, "items.0.quantity", "9999999.999"),
        ({"items": [{**MEDICINE, "value_yuan": "NaN"}]}, "items.0.value_yuan", "99999999.99"),
        ({"items": [MEDICINE] * 51}, "items", "50"),
    ],
)
async def test_a_delivery_no_one_could_have_made_is_refused_naming_the_bound(
    aid: Aid, change: dict[str, object], field: str, said: str
) -> None:
    request = (await aid.post("/requests", request_body())).json()["request"]
    stored = await aid.stored()

    refused = await aid.post(f"/requests/{request}/deliveries", delivery_body(**change))

    assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
    assert said in refused.json()["error"]
    assert await aid.stored() == stored


async def test_a_look_up_of_what_is_not_a_reference_is_refused(aid: Aid) -> None:
    refused = await aid.http.get("/requests", params={"referral": ["referral:r1", "卫姨"]})
    assert (refused.status_code, refused.json()["field"]) == (422, "referral"), refused.text
    assert "'卫姨'" in refused.json()["error"]
