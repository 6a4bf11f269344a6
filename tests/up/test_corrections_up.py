"""A correction end to end, as a coordinator and an auditor meet it: `kapok up` (real
processes, SQLite files), calls recorded over the hotline's HTTP API, the day's report
published, one call voided as logged twice; then the report as of that day is corrected,
the report as known when it was published is what was published, the revisions say who
voided what, when and why, and `kapok audit replay` agrees with both."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from up_parts import Up, free_port, wait_until

from kapok.cli import SERVABLE

pytestmark = pytest.mark.timeout(240)
AUDIT = [sys.executable, "-m", "kapok.cli", "audit", "replay", "--as-of", "2020-02-10"]
NANZHOU = {
    "district": "haizhu",
    "street": "南洲街",
    "station": "station:nanzhou",
    "organisation": "org:haizhu-sw",
}


def audit(up: Up, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}
    return subprocess.run(
        [*AUDIT, "--data-dir", str(up.data_dir), *flags],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def kapok_token(up: Up, *flags: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "kapok.cli",
            "token",
            "create",
            "--data-dir",
            str(up.data_dir),
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_a_call_voided_after_the_report_was_published(tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVABLE}
    up = Up(tmp_path / "state", ports, "up.log")
    try:
        up.wait_ready()
        hotline = httpx.Client(
            base_url=f"http://127.0.0.1:{ports['hotline']}", headers=up.headers, timeout=10
        )
        reporting = httpx.Client(
            base_url=f"http://127.0.0.1:{ports['reporting']}", headers=up.headers, timeout=10
        )
        point = hotline.post(
            "/points", json={"place": NANZHOU, "opened_at": "2020-02-10T08:00:00+08:00"}
        ).json()["point"]
        call: dict[str, Any] = {
            "point": point,
            "category": "help_request",
            "group": "disabled",
            "channel": "phone",
            "received_at": "2020-02-10T09:05:00+08:00",
        }
        calls = hotline.post("/calls:batch", json={"items": [call, call, call]}).json()["calls"]

        def report(**params: str) -> dict[str, Any]:
            got = reporting.get("/api/report", params={"as_of": "2020-02-10", **params})
            assert got.status_code == 200, got.text
            return got.json()  # type: ignore[no-any-return]

        wait_until("the calls counted", lambda: report()["figures"]["services_given"] == 3, 30, up)
        published, published_at = report(), datetime.now(UTC).isoformat()
        time.sleep(0.05)

        # The district's coordinator, signed in with a token the administrator issued her,
        coordinator = kapok_token(
            up, "--role", "coordinator", "--district", "haizhu", "--actor", "worker:coordinator-1"
        )
        voided = hotline.post(
            f"/calls/{calls[1]}/void",
            json={"reason": "logged twice"},
            headers={"Authorization": f"Bearer {coordinator}"},
        )
        assert voided.status_code == 200, voided.text
        again = hotline.post(f"/calls/{calls[1]}/void", json={"reason": "logged twice"})
        assert again.status_code == 409, again.text

        wait_until("the void counted", lambda: report()["figures"]["services_given"] == 2, 30, up)
        then = report(known_at=published_at)
        revisions = reporting.get(
            "/api/revisions", params={"as_of": "2020-02-10", "since": published_at}
        ).json()["revisions"]
        now_audit = audit(up)
        then_audit = audit(up, "--known-at", published_at, "--no-compare")
    finally:
        if up.proc.poll() is None:
            up.ctrl_c()
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)

    assert then["figures"] == published["figures"]
    assert [(r["fact"], r["actor"], r["reason"], r["figures"]) for r in revisions] == [
        (calls[1], "worker:coordinator-1", "logged twice",
         {"services_given": -1, "calls_received": -1}),
    ]  # fmt: skip
    assert now_audit.returncode == 0, now_audit.stderr[-3000:]
    assert "agrees on every figure" in now_audit.stderr
    assert json.loads(now_audit.stdout)["figures"]["services_given"] == 2
    assert then_audit.returncode == 0, then_audit.stderr[-3000:]
    assert json.loads(then_audit.stdout)["figures"] == published["figures"]
