"""Reporting's health says what an operator must see: a stray message dead-lettered makes
it degraded (the count and the reason, in /metrics too), its database away makes it not
ready, it is ready again when the database is back, and a consumer stuck behind a lock is
said stalled. On a private PostgreSQL that the test stops, starts and locks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from harness.private_postgres import private_postgres
from harness.processes import wait_for
from reporting_parts import caught_up, producers, reporting
from reporting_stories import aid_requested, at, call

from shared.bus.naming import Naming
from shared.settings import Settings

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


async def test_dead_letters_make_reporting_degraded_and_its_database_away_not_ready(
    settings: Settings, tmp_path: Path
) -> None:
    with private_postgres() as postgres:
        async with (
            producers(settings, tmp_path) as bus,
            reporting(settings, postgres.url) as (parts, http),
        ):
            await bus.record("hotline", [call(i, at(1)) for i in range(3)])
            await caught_up(parts, await bus.heads())
            ok = await http.get("/api/health")
            assert ok.status_code == 200 and ok.json()["status"] == "ok", ok.text

            # Given a stranger's message on the hotline's subjects,
            subject = Naming.of(settings).event_subject("hotline", "Oops")
            await bus.nc.publish(subject, b"hello")

            async def dead_lettered() -> bool:
                return parts.runner.stats["hotline"].dead_letters == 1

            await wait_for("the stray message dead-lettered", dead_lettered, 30)
            # then reporting still serves (200) but says it is degraded, and why,
            health = await http.get("/api/health")
            body = health.json()
            assert health.status_code == 200 and body["status"] == "degraded", body
            assert body["streams"]["hotline"]["dead_letters"] == 1
            assert body["streams"]["hotline"]["last_dead_letter"]
            dead = "consumer reporting on hotline: 1 dead letter, not counted here ("
            assert any(p.startswith(dead) for p in body["problems"]), body["problems"]
            # and /metrics exposes it for the alert rules (docs/alerts.yml).
            metrics = (await http.get("/metrics")).text
            assert 'kapok_reporting_dead_letters_total{stream="hotline"} 1' in metrics
            assert 'kapok_reporting_chain_breaks_total{stream="hotline"} 0' in metrics
            assert 'kapok_reporting_part_up{part="reporting-consumer"} 1' in metrics

            # Given its database goes away, then it is not ready, naming the database;
            await asyncio.to_thread(postgres.stop)
            down = await http.get("/api/health")
            assert down.status_code == 503, down.text
            assert down.json()["status"] == "down"
            assert down.json()["database"]["reachable"] is False
            # and its figures answer 503 in the error shape, not a traceback;
            report = await http.get("/api/report")
            assert report.status_code == 503 and report.json()["status"] == 503, report.text
            # once it is back, it is ready again (still degraded by its dead letter).
            await asyncio.to_thread(postgres.start)

            async def ready() -> bool:
                return (await http.get("/api/health")).status_code == 200

            await wait_for("reporting ready after its database came back", ready, 30)
            assert (await http.get("/api/health")).json()["status"] == "degraded"

            # Given its checkpoints locked by someone else (the consumer stuck, not dead),
            parts.reporting.health.stall_after = 1.0  # type: ignore[union-attr]
            locker = await asyncpg.connect(postgres.url.replace("+asyncpg", ""))
            try:
                lock = locker.transaction()
                await lock.start()
                await locker.execute("LOCK TABLE consumer_checkpoints IN ACCESS EXCLUSIVE MODE")
                # (on the aid stream: the stranger's message holds the hotline's next sequence)
                await bus.record("aid", [aid_requested(1, at(2))])

                # when events wait and its checkpoint stands still, then it is said stalled.
                async def stalled() -> bool:
                    problems = (await http.get("/api/health")).json()["problems"]
                    return any("on aid: stalled, 1 event waiting" in p for p in problems)

                await wait_for("the stuck consumer said stalled", stalled, 30)
                await lock.rollback()
            finally:
                await locker.close()
            await caught_up(parts, await bus.heads())
