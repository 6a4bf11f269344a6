"""The live service: events published by the three sources become figures over HTTP, once."""

from __future__ import annotations

import asyncio
import csv
import io
import shutil
from asyncio.subprocess import PIPE, STDOUT
from datetime import date
from pathlib import Path

import pytest
from harness.waits import until
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
    referred,
    shift,
    volunteers,
)
from sqlalchemy import update

from services.reporting.adapters.counters import metric_totals
from shared.settings import Settings


async def test_published_events_become_the_four_nets_report_as_of_a_day(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        # Given a week of work across the four nets,
        await bus.record("hotline", [point_opened("point:nanzhou-1", at(1, 8))])
        await bus.record("hotline", [shift(i, at(1 + i % 7)) for i in range(10)])
        await bus.record("hotline", [call(i, at(1 + i % 7), group="disabled") for i in range(30)])
        await bus.record("hotline", [follow_up_done(i, at(2 + i % 5)) for i in range(5)])
        await bus.record("hotline", [referred(1, at(2))])
        await bus.record("aid", [aid_requested(1, at(2, 10)), aid_delivered(1, at(2, 15))])
        await bus.record(
            "donation",
            [
                goods_received(1, at(3), masks=14_901, value="355994.00"),
                funds_received(1, at(4), "136210.00"),
                funds_received(2, at(9), "0.05"),
                volunteers(1864, at(5)),
            ],
        )
        # when reporting folds them,
        async with reporting(settings, database_url) as (parts, http):
            await caught_up(parts, await bus.heads())

            # then the report as of 7 March reads like the article,
            body = (await http.get("/api/report", params={"as_of": "2020-03-07"})).json()
            assert body["as_of"] == "2020-03-07"
            f = body["figures"]
            assert f["hotline_points_opened"] == 1 and f["hotline_shifts"] == 10
            assert f["services_given"] == 35 and f["tracked_services"] == 5
            assert (f["aid_actions"], f["aid_persons_served"]) == (1, 1)
            assert (f["donated_items"], f["donated_value_yuan"]) == (14_901, "355994.00")
            assert f["funds_raised_yuan"] == "136210.00"  # the 0.05 came on 9 March
            assert f["volunteers_linked"] == 1864

            # an instant means its day in Guangzhou: 16:30 UTC on 6 March is 00:30 on the 7th,
            late = await http.get("/api/report", params={"as_of": "2020-03-06T16:30:00Z"})
            assert late.json()["as_of"] == "2020-03-07"
            now = (await http.get("/api/report")).json()["figures"]
            assert now["funds_raised_yuan"] == "136210.05"

            # the counters answer by any dimension,
            by_group = await http.get(
                "/api/counters",
                params={"metric": "calls_received,follow_ups_completed", "by": "metric,grp"},
            )
            assert by_group.json()["counters"] == [
                {"metric": "calls_received", "grp": "disabled", "value": 30},
                {"metric": "follow_ups_completed", "grp": "disabled", "value": 5},
            ]
            daily = await http.get(
                "/api/counters",
                params={"metric": "calls_received", "by": "day", "as_of": "2020-03-02"},
            )
            assert daily.json()["counters"] == [
                {"day": "2020-03-01", "value": 5},
                {"day": "2020-03-02", "value": 5},
            ]
            naive = await http.get("/api/counters", params={"as_of": "2020-03-07T09:00"})
            assert naive.status_code == 422 and "timezone" in naive.json()["error"]
            unknown = await http.get("/api/counters", params={"colour": "red"})
            assert unknown.status_code == 422

            # and the same report comes as CSV and as a printable page.
            text = (await http.get("/api/report?as_of=2020-03-07&format=csv")).text
            rows = {r["figure"]: r["value"] for r in csv.DictReader(io.StringIO(text))}
            assert rows["donated_value_yuan"] == "355994.00" and rows["aid_actions"] == "1"
            page = await http.get("/api/report?as_of=2020-03-07&format=html")
            assert page.headers["content-type"].startswith("text/html")
            assert "抗疫救援服务网" in page.text and "14,901" in page.text

            health = await http.get("/api/health")
            assert health.status_code == 200 and health.json()["ready"] is True
            assert health.json()["streams"]["hotline"]["lag"] == 0


async def test_the_counters_ungrouped_are_one_total_even_before_anything_happened(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    ungrouped = {"by": "", "metric": "calls_received"}
    async with (
        producers(settings, tmp_path) as bus,
        reporting(settings, database_url) as (parts, http),
    ):
        empty = await http.get("/api/counters", params=ungrouped)
        assert empty.status_code == 200 and empty.json()["counters"] == [{"value": 0}]
        await bus.record("hotline", [call(i, at(1)) for i in range(3)])
        await caught_up(parts, await bus.heads())
        three = await http.get("/api/counters", params=ungrouped)
        assert three.json()["counters"] == [{"value": 3}]


async def test_a_restart_and_a_full_redelivery_never_count_twice(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1)) for i in range(200)])
        async with reporting(settings, database_url, batch=50) as (parts, http):
            await caught_up(parts, await bus.heads())
        # While reporting is down, more happens;
        await bus.record("hotline", [call(i, at(2)) for i in range(200, 300)])
        await bus.record("aid", [aid_requested(1, at(2))])
        # and its durable is lost, so the server delivers everything again from the start.
        js = bus.nc.jetstream()
        await js.delete_consumer(f"{settings.stream_prefix}HOTLINE", "reporting")
        async with reporting(settings, database_url, batch=50) as (parts, http):
            await caught_up(parts, await bus.heads())
            figures = (await http.get("/api/report")).json()["figures"]
            assert figures["services_given"] == 300
            assert figures["aid_requests_open"] == 1


async def test_the_live_headline_is_the_sum_of_the_daily_buckets_across_restarts(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1 + i % 5)) for i in range(120)])
        await bus.record("aid", [aid_requested(1, at(2)), aid_delivered(1, at(3))])
        await bus.record("donation", [funds_received(1, at(4), "12.34")])
        async with reporting(settings, database_url, batch=7) as (parts, http):
            await caught_up(parts, await bus.heads())
            live = await parts.reporting.store.totals()
            summed = await parts.reporting.store.totals(as_of=date(2100, 1, 1))
            assert live == summed and live["calls_received"] == 120
            assert live["funds_received_fen"] == 1234
            # Say the running totals drifted from the buckets (a bug, a hand edit):
            async with parts.db.write() as conn:
                await conn.execute(update(metric_totals).values(value=metric_totals.c.value + 5))
        await bus.record("hotline", [call(i, at(6)) for i in range(120, 130)])
        # a restart sums them again from the buckets, which are the record.
        async with reporting(settings, database_url, batch=7) as (parts, http):
            await caught_up(parts, await bus.heads())
            live = await parts.reporting.store.totals()
            assert live == await parts.reporting.store.totals(as_of=date(2100, 1, 1))
            assert live["calls_received"] == 130
            figures = (await http.get("/api/report")).json()["figures"]
            assert figures["services_given"] == 130


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not found: install the Debian package prometheus "
            "(apt-get install -y prometheus) to validate the /metrics exposition"
        )
    return found


async def test_metrics_are_valid_prometheus_exposition_with_low_cardinality_labels(
    settings: Settings, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/reporting.db"
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1), group="child") for i in range(3)])
        await bus.record("hotline", [point_opened("point:a", at(1))])
        await bus.record("donation", [funds_received(1, at(4), "136210.10")])
        async with reporting(settings, database_url) as (parts, http):
            await caught_up(parts, await bus.heads())
            response = await http.get("/metrics")
    text = response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert (
        'kapok_reporting_calls_received_total{district="haizhu",group="child",'
        'category="emotional_support"} 3' in text
    )
    assert 'kapok_reporting_hotline_points_open{district="haizhu"} 1' in text
    assert "kapok_reporting_funds_received_yuan_total{category=" in text
    assert 'kapok_reporting_consumer_lag{stream="hotline"} 0' in text
    assert 'kapok_reporting_events_applied_total{stream="hotline"} 4' in text
    # No station, point, campaign or day ever becomes a label.
    assert "station=" not in text and "campaign=" not in text and "point=" not in text

    check = await asyncio.create_subprocess_exec(
        promtool(), "check", "metrics", stdin=PIPE, stdout=PIPE, stderr=STDOUT
    )
    said, _ = await check.communicate(text.encode())
    assert check.returncode == 0, said.decode()


async def test_the_headline_totals_are_in_a_kv_bucket_any_nats_client_can_watch(
    settings: Settings, tmp_path: Path
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path}/reporting.db"
    async with (
        producers(settings, tmp_path) as bus,
        reporting(settings, database_url) as (parts, _),
    ):
        kv = await bus.nc.jetstream().key_value(f"{settings.stream_prefix}REPORTING_TOTALS")
        watcher = await kv.watch("services_given")
        await bus.record("hotline", [call(i, at(1)) for i in range(3)])
        await bus.record("donation", [funds_received(1, at(2), "0.30")])
        await caught_up(parts, await bus.heads())
        seen = []
        while "3" not in seen:
            entry = await asyncio.wait_for(watcher.updates(timeout=10), 10)
            if entry is not None and entry.value is not None:
                seen.append(entry.value.decode())
        await watcher.stop()
        assert seen[-1] == "3"

        async def funds_put() -> bool:
            return (await kv.get("funds_raised_yuan")).value == b"0.30"

        await until("funds_raised_yuan 0.30 in the bucket", funds_put, 5)


async def test_the_kv_bucket_follows_many_small_commits_at_a_bounded_rate(
    settings: Settings, tmp_path: Path
) -> None:
    """Sixty batches of one call, committed one by one as fast as they come: the bucket
    ends on the right figure, and took far fewer puts than commits (at most one round per
    ``every``), so a steady stream of commands does not have the folding process put a
    figure per commit."""
    database_url = f"sqlite+aiosqlite:///{tmp_path}/reporting.db"
    async with (
        producers(settings, tmp_path) as bus,
        reporting(settings, database_url, batch=1) as (parts, _),
    ):
        for i in range(60):
            await bus.record("hotline", [call(i, at(1))])
        await caught_up(parts, await bus.heads())
        commits = parts.db.commits
        js = bus.nc.jetstream()
        kv = await js.key_value(f"{settings.stream_prefix}REPORTING_TOTALS")

        async def sixty_put() -> bool:
            return (await kv.get("services_given")).value == b"60"

        await until("services_given 60 in the bucket", sixty_put, 5)
        info = await js.stream_info(f"KV_{settings.stream_prefix}REPORTING_TOTALS")
        puts = info.state.last_seq  # every put of every figure, counted
    assert commits >= 60
    assert puts < commits
