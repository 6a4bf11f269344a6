"""A command service while its PostgreSQL is away: `kapok serve hotline` on a private
PostgreSQL that the test stops and starts again. 503 in Kapok's error shape while it is down
(nothing stored, no traceback, one log line for the outage), health down and then up, and
the same Idempotency-Key answered 201 once it is back."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import nats
import orjson
import pytest
from asyncpg.exceptions import AdminShutdownError, CannotConnectNowError
from harness.private_postgres import private_postgres
from harness.processes import ADMIN, free_port, serve, serve_env, stop, until_answering, wait_for
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.bus.naming import Naming
from shared.service.replies import unreachable
from shared.settings import Settings

pytestmark = pytest.mark.timeout(120)

PLACE = {
    "district": "haizhu",
    "street": "南洲街",
    "station": "station:nanzhou",
    "organisation": "org:haizhu-sw",
}
OPEN = {"place": PLACE, "opened_at": "2020-01-25T09:00:00+08:00"}


@pytest.mark.asyncio(loop_scope="session")
async def test_a_database_outage_answers_503_shows_in_health_and_ends_cleanly(
    settings: Settings, tmp_path: Path
) -> None:
    with private_postgres() as postgres:
        env = {**serve_env(settings, tmp_path), "KAPOK_DATABASE_URL": postgres.url}
        port, log = free_port(), tmp_path / "hotline.log"
        process = await serve("hotline", env, log, port)
        nc = await nats.connect(settings.nats_url)
        try:
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}", timeout=15, headers=ADMIN
            ) as http:
                await until_answering(http, process)
                first = await http.post("/points", json=OPEN, headers={"Idempotency-Key": "p1"})
                assert first.status_code == 201, first.text
                healthy = await http.get("/api/health")
                assert healthy.status_code == 200, healthy.text
                assert healthy.json()["status"] == "ok"
                assert healthy.json()["database"]["reachable"] is True
                assert healthy.json()["nats"]["connected"] is True
                assert healthy.json()["tasks"] == {
                    "hotline-relay": "running",
                    "hotline-tokens": "running",
                }
                assert healthy.json()["relay"]["stopped"] is None

                # Given the database goes away,
                await asyncio.to_thread(postgres.stop)
                # when commands arrive, then each is answered 503 in the one error shape,
                for _ in range(5):
                    down = await http.post("/points", json=OPEN, headers={"Idempotency-Key": "p2"})
                    assert down.status_code == 503, down.text
                    assert down.json()["status"] == 503
                    assert "database cannot be reached" in down.json()["error"]
                    assert "Traceback" not in down.text
                # over NATS too,
                reply = await nc.request(
                    Naming.of(settings).command_subject("hotline", "OpenHotlinePoint"),
                    orjson.dumps(OPEN),
                    timeout=10,
                    headers={**ADMIN, "Idempotency-Key": "p3"},
                )
                assert orjson.loads(reply.data)["status"] == 503, reply.data
                # a read too (no traceback logged for it either),
                point = first.json()["point"]
                read = await http.get(f"/points/{point}")
                assert read.status_code == 503 and read.json()["status"] == 503, read.text
                # the health says not ready, naming the database,
                health = await http.get("/api/health")
                assert health.status_code == 503, health.text
                assert health.json()["status"] == "down" and not health.json()["ready"]
                assert health.json()["database"]["reachable"] is False
                assert any(p.startswith("database: ") for p in health.json()["problems"])
                # while liveness still answers (the process need not be restarted).
                assert (await http.get("/api/health/live")).status_code == 200

                # When the database is back, the same key is answered 201 (stored once),
                await asyncio.to_thread(postgres.start)

                async def stored() -> bool:
                    again = await http.post("/points", json=OPEN, headers={"Idempotency-Key": "p2"})
                    assert again.status_code in (201, 503), again.text
                    return again.status_code == 201

                await wait_for("the command stored after the outage", stored, 30)
                health = await http.get("/api/health")
                assert health.status_code == 200 and health.json()["database"]["reachable"]
        finally:
            await nc.close()
            assert await stop(process) == 0
        # and the log has one line for the outage and one for its end, no traceback.
        text = log.read_text(errors="replace")
        assert text.count("the database cannot be reached") == 1, text
        assert text.count("the database is back after") == 1, text
        # (5 commands over HTTP, 1 over NATS, 1 read, and any while it was starting again)
        refused = re.search(r"\((\d+) requests answered 503\)", text)
        assert refused and int(refused[1]) >= 7, text
        assert "Traceback" not in text, text


def test_what_counts_as_the_database_away_and_what_does_not() -> None:
    def wrapped(error: Exception) -> Exception:
        outer = OperationalError("SELECT 1", {}, error)
        outer.__cause__ = error
        return outer

    away = [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError("Connection lost"),
        TimeoutError(),
        AdminShutdownError("terminating connection due to administrator command"),
        CannotConnectNowError("the database system is starting up"),
        wrapped(OSError("could not connect")),
    ]
    assert [unreachable(error) for error in away] == [True] * len(away)
    wrong = [
        IntegrityError("INSERT", {}, ValueError("duplicate key")),
        FileNotFoundError("static/missing.js"),
        ValueError("not a date"),
    ]
    assert [unreachable(error) for error in wrong] == [False] * len(wrong)
