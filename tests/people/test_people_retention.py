"""Retention: details are forgotten a configurable number of days after the last contact,
as the service's own command, recorded as PersonForgotten with reason "retention"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from people_parts import People, person_body

from services.people.entrypoints.retention import sweep

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_people_not_contacted_for_longer_than_the_retention_are_forgotten(
    people: People,
) -> None:
    long_ago = (await people.post("/people", person_body())).json()["person"]
    also_long_ago = (await people.post("/people", person_body())).json()["person"]
    yesterday = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    recent = (await people.post("/people", person_body(recorded_at=yesterday))).json()["person"]

    # Both in one batch: one rotation of the master key, not one per person.
    assert await sweep(people.service, timedelta(days=365)) == 2
    assert len(people.service.vault.ring.keys) == 1
    gone = await people.http.get(f"/people/{long_ago}")
    assert gone.status_code == 410 and "retention" in gone.json()["error"], gone.text
    assert (await people.http.get(f"/people/{recent}")).status_code == 200
    published = await people.published()
    forgotten = {e["data"]["person"] for e in published if e["type"] == "PersonForgotten"}
    assert forgotten == {long_ago, also_long_ago}
    assert published[-1]["data"]["reason"] == "retention"
    assert published[-1]["actor"] == "service:people"
    # Nothing more is due: a second sweep forgets no one.
    assert await sweep(people.service, timedelta(days=365)) == 0
