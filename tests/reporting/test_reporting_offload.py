"""The live fold with its worker process: the counters it folds there are, row by row, those
the audit replay folds in one process."""

from __future__ import annotations

from pathlib import Path

from reporting_parts import caught_up, producers, reporting
from reporting_stories import (
    aid_delivered,
    aid_requested,
    at,
    call,
    follow_up_done,
    funds_received,
    goods_received,
    point_opened,
    project_output,
    referred,
    shift,
    volunteers,
)

from services.reporting.adapters.counters import KEY_COLUMNS
from services.reporting.audit import replay
from shared.bus.naming import Naming
from shared.settings import PRODUCERS, Settings

GROUPS = ["elderly_alone", "disabled", "low_income", "child", "general"]


async def test_counters_folded_in_the_worker_equal_the_replay_row_by_row(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        async with reporting(settings, database_url, offload_from=20) as (parts, http):
            await parts.runner.start_worker()
            # Given ten days of work recorded while reporting runs, in chunks it takes whole,
            await bus.record("hotline", [point_opened(f"point:p{p}", at(1, 8)) for p in range(3)])
            for day in range(1, 11):
                await bus.record(
                    "hotline",
                    [call(day * 100 + i, at(day, 9 + i % 8), GROUPS[i % 5]) for i in range(60)]
                    + [shift(day * 100 + i, at(day)) for i in range(5)]
                    + [follow_up_done(day * 100 + i, at(day, 15)) for i in range(10)]
                    + [referred(day * 100 + i, at(day, 16)) for i in range(3)],
                )  # fmt: skip
                await bus.record(
                    "donation",
                    [funds_received(day * 100 + i, at(day), f"{i}.{day:02d}") for i in range(10)]
                    + [goods_received(day * 100 + i, at(day), 10 + i, "120.50") for i in range(10)]
                    + [volunteers(day + i, at(day)) for i in range(5)]
                    + [project_output(day * 100 + i, at(day)) for i in range(5)],
                )  # fmt: skip
                await bus.record(
                    "aid",
                    [aid_requested(day * 10 + i, at(day, 10)) for i in range(3)]
                    + [aid_delivered(day * 10 + i, at(day, 14)) for i in range(2)],
                )
            await caught_up(parts, await bus.heads())
            rows = await parts.reporting.store.counters(None, {}, KEY_COLUMNS)
            live_report = (await http.get("/api/report")).json()
            stats = parts.runner.stats
            health = (await http.get("/api/health")).json()
            metrics = (await http.get("/metrics")).text
        replayed = await replay(bus.nc, Naming.of(settings), PRODUCERS, detail=True)

    # then the worker folded (most of) the hotline and donation batches, never the aid ones,
    assert stats["hotline"].prepared_elsewhere > 0 and stats["donation"].prepared_elsewhere > 0
    assert stats["aid"].prepared_elsewhere == 0
    assert health["streams"]["hotline"]["prepared_elsewhere"] == stats["hotline"].prepared_elsewhere
    assert (
        'kapok_reporting_events_prepared_elsewhere_total{stream="hotline"} '
        f"{stats['hotline'].prepared_elsewhere}"
    ) in metrics
    # and every counter is the replay's, which folds the same events in one process.
    assert replayed.broken == []
    live = {tuple(r[c] for c in KEY_COLUMNS): r["value"] for r in rows if r["value"]}
    expected = {
        (k.metric, k.day.isoformat(), *k[2:]): v for k, v in replayed.increments.items() if v
    }
    assert live == expected
    assert live_report["figures"] == replayed.report(None, at(1).date())["figures"]
