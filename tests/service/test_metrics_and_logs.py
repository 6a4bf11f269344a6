"""A command service's instance answers Prometheus on /metrics (its relay, its leases, its
consumer) to a role that watches only, and with KAPOK_LOG_FORMAT=json logs one JSON object a
line naming the service and the instance, with no token and no person in them: `kapok serve
aid` on the test's nats-server, as an operator runs it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import nats
import pytest
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
from harness.signin import bearer, kv_grant
from test_health import request

from shared.bus.naming import Naming
from shared.settings import Settings

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(120)]

INSTANCE = "aid-metrics-1"


def samples(text: str) -> dict[str, float]:
    """Each sample line of an exposition: its name with labels, and its value."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


async def test_metrics_for_watchers_only_and_json_log_lines(
    settings: Settings, tmp_path: Path
) -> None:
    env = {**serve_env(settings, tmp_path), "KAPOK_LOG_FORMAT": "json", "KAPOK_INSTANCE": INSTANCE}
    port, log = free_port(), tmp_path / "aid.log"
    process = await serve("aid", env, log, port)
    nc = await nats.connect(settings.nats_url)
    ops = await kv_grant(settings, "ops")
    auditor = await kv_grant(settings, "auditor")
    person = request(0)["person"]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http:
            await until_answering(http, process)
            assert (await http.post("/requests", json=request(0), headers=ADMIN)).status_code == 201

            # Without a token, 401; an auditor (who may not watch), 403.
            assert (await http.get("/metrics")).status_code == 401
            await wait_for(
                "the auditor's token known",
                lambda: _status(http, auditor, 403),
            )
            await wait_for("the ops token known", lambda: _status(http, ops, 200))

            async def relayed() -> bool:
                got = samples((await http.get("/metrics", headers=bearer(ops))).text)
                return any(k.startswith("kapok_relay_position{") and v == 1 for k, v in got.items())

            await wait_for("the first event relayed, in the metrics", relayed)
            answer = await http.get("/metrics", headers=bearer(ops))
            assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
            got = samples(answer.text)
            own = f'service="aid",kapok_instance="{INSTANCE}"'
            # The one instance holds the relay's lease and its consumer's.
            assert got[f'kapok_lease_held{{{own},lease="relay"}}'] == 1, got
            assert got[f'kapok_lease_held{{{own},lease="aid-referrals"}}'] == 1, got
            assert got[f'kapok_relay_stopped{{{own},stream="{_stream(settings)}"}}'] == 0
            assert got[f'kapok_relay_lag{{{own},stream="{_stream(settings)}"}}'] == 0
            referrals = f'{own},consumer="aid-referrals",stream="hotline"'
            assert got[f"kapok_consumer_dead_letters_total{{{referrals}}}"] == 0
            assert got[f'kapok_consumer_standing_by{{{own},consumer="aid-referrals"}}'] == 0

            # When a stranger publishes on the aid stream's subjects, the relay stops: 1.
            await nc.publish(Naming.of(settings).event_subject("aid", "Oops"), b"hello")
            await nc.flush()
            assert (await http.post("/requests", json=request(1), headers=ADMIN)).status_code == 201

            async def stopped() -> bool:
                got = samples((await http.get("/metrics", headers=bearer(ops))).text)
                return got.get(f'kapok_relay_stopped{{{own},stream="{_stream(settings)}"}}') == 1

            await wait_for("the stopped relay in the metrics", stopped)
    finally:
        await nc.close()
        await stop(process)
    # Every line the process wrote is a JSON object naming the service and the instance,
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]
    for record in records:
        assert {"time", "level", "logger", "message"} <= record.keys(), record
        assert record["service"] == "aid" and record["instance"] == INSTANCE, record
    # among them the relay's stop, loudly, and uvicorn's own lines;
    assert any(r["level"] == "critical" and "relay" in r["message"] for r in records), lines
    assert any(r["logger"].startswith("uvicorn") for r in records), lines
    # and none holds a token or the person the requests named.
    text = log.read_text()
    for secret in (ADMIN_TOKEN, ops, auditor, str(person)):
        assert secret not in text


async def _status(http: httpx.AsyncClient, token: str, expected: int) -> bool:
    return (await http.get("/metrics", headers=bearer(token))).status_code == expected


def _stream(settings: Settings) -> str:
    return Naming.of(settings).stream("aid")
