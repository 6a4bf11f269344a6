"""A command service's /api/health names every part, and a stopped relay is never hidden:
`kapok serve aid` (its relay and its consumer of hotline referrals) on the test's
nats-server, and a stranger's message on the aid stream's subjects."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import nats
import pytest
from harness.calls import NANZHOU
from harness.processes import (
    ADMIN,
    ADMIN_TOKEN,
    free_port,
    serve,
    serve_env,
    stop,
    until_answering,
    wait_for,
)

from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.contracts.refs import person_ref
from shared.eventstore import Database
from shared.service.health import Health
from shared.settings import Settings

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]


def request(minute: int) -> dict[str, object]:
    return {
        "person": person_ref("7f3a9c"),
        "group": "disabled",
        "place": NANZHOU.model_dump(),
        "needs": ["medicine"],
        "urgency": "today",
        "origin": "station_visit",
        "requested_at": f"2020-02-10T09:{minute:02d}:00+08:00",
    }


async def test_health_names_each_part_and_a_stopped_relay_makes_the_service_not_ready(
    settings: Settings, tmp_path: Path
) -> None:
    port, log = free_port(), tmp_path / "aid.log"
    process = await serve("aid", serve_env(settings, tmp_path), log, port)
    nc = await nats.connect(settings.nats_url)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=15, headers=ADMIN
        ) as http:
            await until_answering(http, process)
            assert (await http.post("/requests", json=request(0))).status_code == 201

            async def relayed() -> bool:
                body = (await http.get("/api/health")).json()
                return bool(body["relay"]["position"] == body["relay"]["head"] == 1)

            await wait_for("the first event relayed", relayed)
            health = await http.get("/api/health")
            body = health.json()
            # Given a healthy service, each part is named:
            assert health.status_code == 200 and body["status"] == "ok", body
            assert body["ready"] is True and body["problems"] == []
            assert body["database"]["reachable"] and body["nats"]["connected"]
            assert body["relay"]["stopped"] is None and body["relay"]["lag"] == 0
            referrals = body["consumers"]["aid-referrals"]["hotline"]
            assert referrals["dead_letters"] == 0 and referrals["chain_breaks"] == 0
            running = {"aid-relay", "aid-referrals", "aid-tokens"}
            assert body["tasks"] == dict.fromkeys(running, "running")
            assert (await http.get("/api/health/live")).json() == {"status": "ok", "live": True}

            # When a stranger publishes on the aid stream's subjects while its relay is idle,
            await nc.publish(Naming.of(settings).event_subject("aid", "Oops"), b"hello")
            await nc.flush()
            # then commands still succeed (their events wait in the store),
            assert (await http.post("/requests", json=request(1))).status_code == 201

            async def not_ready() -> bool:
                return (await http.get("/api/health")).status_code == 503

            await wait_for("health not ready once the relay stopped", not_ready)
            # but the service says it is not ready, and why, in the operator's words.
            body = (await http.get("/api/health")).json()
            assert body["status"] == "down" and body["ready"] is False
            assert body["relay"]["stopped"], body["relay"]
            assert any(p.startswith("relay: stopped: ") for p in body["problems"]), body
            assert body["relay"]["lag"] >= 1
            # `kapok status` says so too, with a non-zero exit (up.json as `kapok up` writes it).
            up = {"up": os.getpid(), "nats_url": settings.nats_url, "ports": {"aid": port}}
            (tmp_path / "up.json").write_text(json.dumps({**up, "services": {"aid": process.pid}}))
            status = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "kapok.cli", "status", "--data-dir", str(tmp_path)],
                capture_output=True,
                text=True,
                timeout=30,
                env={**os.environ, "KAPOK_TOKEN": ADMIN_TOKEN},
            )
            assert status.returncode == 1, status.stdout + status.stderr
            lines = status.stdout.splitlines()
            assert any(line.startswith("nats-server ok") for line in lines), status.stdout
            assert any(line.startswith("aid         down") for line in lines), status.stdout
            assert "    - relay: stopped: " in status.stdout
    finally:
        await nc.close()
        assert await stop(process) == 0


async def test_a_background_task_that_died_makes_the_process_not_ready_naming_it(
    tmp_path: Path,
) -> None:
    # Given a process whose KV publisher died (an upgrade of a dependency, say),
    async def publish_totals() -> None:
        raise RuntimeError("the bucket API changed")

    died = asyncio.create_task(publish_totals(), name="reporting-kv")
    await asyncio.wait({died})
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    try:
        # when its health is asked, then it is not ready, naming the task and its error.
        status, body = await Health("reporting", db, tasks=[died]).check()
    finally:
        await db.dispose()
    assert status == 503 and body["status"] == "down"
    assert body["tasks"] == {"reporting-kv": "died: RuntimeError: the bucket API changed"}
    assert body["problems"] == ["reporting-kv: died: RuntimeError: the bucket API changed"]
    assert body["database"]["reachable"] is True


async def test_a_nats_outage_is_degraded_not_down_said_once_each_way_and_stops_cleanly(
    settings: Settings, tmp_path: Path
) -> None:
    # A nats-server of the test's own, to kill and start again on the same port.
    server = await asyncio.to_thread(EmbeddedNats(tmp_path / "nats", port=0).start)
    env = {**serve_env(settings, tmp_path), "KAPOK_NATS_URL": server.url}
    port, log = free_port(), tmp_path / "aid.log"
    process = await serve("aid", env, log, port)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=15, headers=ADMIN
        ) as http:
            await until_answering(http, process)
            # Given nats-server killed outright,
            os.kill(server.pid or 0, signal.SIGKILL)
            await asyncio.to_thread(server.stop)

            async def reconnecting() -> bool:
                return (await http.get("/api/health")).json()["nats"]["connected"] is False

            await wait_for("health sees NATS away", reconnecting)
            # when a command comes, then it succeeds (its event waits in the store),
            assert (await http.post("/requests", json=request(0))).status_code == 201
            # and the service is degraded (200), saying since when NATS is away.
            health = await http.get("/api/health")
            body = health.json()
            assert health.status_code == 200 and body["status"] == "degraded", body
            assert body["nats"]["reconnecting_since"] and body["nats"]["outages"] == 1
            assert any(p.startswith("nats: reconnecting since") for p in body["problems"])

            # When it is back on the same port, the event is published and all is ok again.
            server = EmbeddedNats(tmp_path / "nats", port=server.port)
            await asyncio.to_thread(server.start)

            async def relayed() -> bool:
                body = (await http.get("/api/health")).json()
                return bool(body["status"] == "ok" and body["relay"]["position"] == 1)

            await wait_for("the event relayed once NATS is back", relayed)
            # NATS away again: the service still stops cleanly (exit 0) on Ctrl-C.
            os.kill(server.pid or 0, signal.SIGKILL)
            await wait_for("health sees NATS away again", reconnecting)
    finally:
        assert await stop(process) == 0
        await asyncio.to_thread(server.stop)
    text = log.read_text(errors="replace")
    assert text.count("aid: NATS connection lost") == 2, text
    assert text.count("aid: NATS reconnected after") == 1, text
    assert "Traceback" not in text and "encountered error" not in text, text
