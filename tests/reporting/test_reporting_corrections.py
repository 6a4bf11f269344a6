"""Corrections in the live figures, on real parts: given a day's calls reported, when one is
voided, then the report as of that day shows the corrected figure, the report as known when
it was first published still shows what was reported then, the revisions list who voided
what, when and why, and the audit replay agrees with both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from reporting_parts import caught_up, producers, reporting
from reporting_stories import aid_delivered, aid_requested, at, call, day, voided

from services.reporting.audit import replay
from shared.bus.naming import Naming
from shared.settings import PRODUCERS, Settings


async def test_a_void_corrects_the_day_and_the_report_as_known_then_stands(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        calls = [call(i, at(2)) for i in range(3)]
        delivered = aid_delivered(1, at(2, 15))
        await bus.record("hotline", calls)
        await bus.record("aid", [aid_requested(1, at(2, 10)), delivered])
        async with reporting(settings, database_url) as (parts, http):
            await caught_up(parts, await bus.heads())
            as_of = {"as_of": "2020-03-02"}
            published = (await http.get("/api/report", params=as_of)).json()
            published_at = datetime.now(UTC)
            await asyncio.sleep(0.05)  # the bus's timestamps are the server's: a clear gap

            # On 5 March a coordinator voids a call logged twice and a delivery to the wrong door.
            await bus.record("hotline", [voided([calls[0]], at(5), reason="logged twice")])
            await bus.record("aid", [voided([delivered], at(5), reason="wrong door",
                                            request_reopened=True)])  # fmt: skip
            await caught_up(parts, await bus.heads())

            now = (await http.get("/api/report", params=as_of)).json()
            then = (
                await http.get(
                    "/api/report", params={**as_of, "known_at": published_at.isoformat()}
                )
            ).json()
            revisions = (
                await http.get(
                    "/api/revisions", params={**as_of, "since": published_at.isoformat()}
                )
            ).json()["revisions"]
            naming = Naming.of(settings)
            replayed = await replay(bus.nc, naming, PRODUCERS)
            replayed_then = await replay(bus.nc, naming, PRODUCERS, known_at=published_at)

    assert published["figures"]["services_given"] == 3 and published["figures"]["aid_actions"] == 1
    assert now["figures"]["services_given"] == 2 and now["figures"]["aid_actions"] == 0
    assert now["figures"]["aid_requests_open"] == 1
    assert {k: v for k, v in then["figures"].items() if published["figures"][k] != v} == {}
    assert {**then, "known_at": None} == {**published, "known_at": None}
    assert [(r["type"], r["reason"], r["actor"]) for r in revisions] == [
        ("CallVoided", "logged twice", "system"),
        ("AidDeliveryVoided", "wrong door", "system"),
    ]
    assert revisions[0]["figures"] == {"services_given": -1, "calls_received": -1}
    assert revisions[0]["days"] == ["2020-03-02"]
    assert revisions[1]["figures"]["aid_actions"] == -1
    assert revisions[1]["figures"]["aid_requests_open"] == 1
    assert replayed.report(day(2), day(2)) == now
    assert replayed_then.report(day(2), day(2)) == published
