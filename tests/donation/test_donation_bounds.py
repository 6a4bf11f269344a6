"""Bad input never reaches the record: money and goods a social worker could not mean, or that
are not numbers at all, are refused with 422 naming the field and the bound, over HTTP and
over NATS alike, and nothing is stored (docs/bounds.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from donation_parts import Donation
from donation_stories import campaign_body, receipt_body
from harness import databases
from harness.stories import at

FUNDS = {"donor_kind": "company", "received_at": at(5).isoformat()}


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Bounds are checked before any database is read: SQLite alone is enough."""
    return databases.sqlite_url(tmp_path)


async def post(donation: Donation, path: str, body: dict[str, Any]) -> httpx.Response:
    """As a client sends it, integers over 64 bits too (which orjson will not write)."""
    return await donation.http.post(path, content=json.dumps(body))


async def request(donation: Donation, command: str, body: dict[str, Any]) -> dict[str, Any]:
    subject = donation.naming.command_subject(donation.name, command)
    signed_in = {"Authorization": f"Bearer {donation.token}"}
    reply = await donation.nc.request(
        subject, json.dumps(body).encode(), timeout=30, headers=signed_in
    )
    return orjson.loads(reply.data)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("amount", "said"),
    [
        ("99999999999999999999999.99", "99999999.99"),  # the fuzzer's 10^23 yuan
        ("1e30", "99999999.99"),
        ("", "decimal string"),
        ("abc", "decimal string"),
        ("NaN", "decimal string"),
        ("-1", "decimal string"),
        ("0.00", "above 0"),
        ("12.345", "at most 2 places"),
        (136210.5, "never a number"),
        (2**70, "never a number"),
    ],
)
async def test_money_no_one_could_mean_is_refused_naming_the_bound(
    donation: Donation, amount: object, said: str
) -> None:
    campaign = await donation.launch(campaign_body())
    stored = await donation.stored()

    refused = await post(donation, f"/campaigns/{campaign}/funds", {**FUNDS, "amount_yuan": amount})

    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == "amount_yuan"
    assert said in refused.json()["error"]
    over_nats = await request(
        donation, "ReceiveFunds", {**FUNDS, "campaign": campaign, "amount_yuan": amount}
    )
    assert (over_nats["status"], over_nats["field"]) == (422, "amount_yuan")
    assert await donation.stored() == stored


@pytest.mark.parametrize(
    ("line", "field", "said"),
    [
        ({"quantity": "10000000"}, "items.0.quantity", "9999999.999"),
        ({"quantity": "1e30"}, "items.0.quantity", "decimal string"),
        ({"quantity": "0.0001"}, "items.0.quantity", "at most 3 places"),
        ({"value_yuan": "100000000.00"}, "items.0.value_yuan", "99999999.99"),
    ],
)
async def test_goods_no_one_could_mean_are_refused_naming_the_bound(
    donation: Donation, line: dict[str, str], field: str, said: str
) -> None:
    campaign = await donation.launch(campaign_body())
    stored = await donation.stored()
    body = receipt_body()
    body["items"] = [{**body["items"][0], **line}]

    refused = await donation.post(f"/campaigns/{campaign}/receipts", body)

    assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
    assert said in refused.json()["error"]
    assert await donation.stored() == stored


@pytest.mark.parametrize(
    ("volunteers", "said"), [(10_001, "10000"), (2**64, "10000"), ("3", "integer"), (0, "1")]
)
async def test_volunteers_beyond_the_bound_are_refused(
    donation: Donation, volunteers: object, said: str
) -> None:
    link = {
        "volunteers": volunteers,
        "district": "haizhu",
        "station": "station:nanzhou",
        "organisation": "org:haizhu-sw",
        "linked_at": at(5).isoformat(),
    }
    refused = await post(donation, "/volunteers", link)
    assert (refused.status_code, refused.json()["field"]) == (422, "volunteers"), refused.text
    assert said in refused.json()["error"]


@pytest.mark.parametrize(
    ("launched_at", "said"),
    [("0006-02-10T09:00:00+08:00", "start of records"), ("9916-02-10T09:00:00+08:00", "future")],
)
async def test_a_date_outside_the_records_window_is_refused(
    donation: Donation, launched_at: str, said: str
) -> None:
    refused = await donation.post("/campaigns", campaign_body(launched_at=launched_at))
    assert (refused.status_code, refused.json()["field"]) == (422, "launched_at"), refused.text
    assert said in refused.json()["error"]
    far = await donation.post("/campaigns", campaign_body(ends_on="2999-01-01"))
    assert (far.status_code, far.json()["field"]) == (422, "ends_on"), far.text
