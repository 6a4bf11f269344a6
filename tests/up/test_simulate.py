"""The 2020 scenario end to end: `kapok up` (nats-server, four services) and
`kapok simulate guangzhou-2020` as separate processes, then reporting's figures as of
2020-03-07 must equal the scaled article figures exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from harness.databases import for_kapok_up
from up_parts import Up, free_port, wait_until

from kapok.cli import SERVABLE
from kapok.simulate.figures import ARTICLE, scaled, targets

pytestmark = pytest.mark.timeout(420)
AUDIT = [sys.executable, "-m", "kapok.cli", "audit", "replay"]
SCALE = "0.01"  # the smallest round scale that leaves a hotline point (229 × 0.001 → 0)


def test_scaling_is_round_half_up_to_the_unit_and_the_fen() -> None:
    assert scaled(229, Decimal("0.01")) == 2  # 2.29
    assert scaled(5_478, Decimal("0.01")) == 55  # 54.78
    assert scaled(10_237, Decimal("0.002")) == 20  # 20.474
    assert scaled(1_864, Decimal("0.25")) == 466
    assert scaled(10_540, Decimal("0.00005")) == 1  # 0.527
    assert scaled(14_901, Decimal("0.0001")) == 1  # 1.4901
    assert scaled(Decimal("355994.00"), Decimal("0.01")) == Decimal("3559.94")
    assert scaled(Decimal("136210.00"), Decimal("0.00001")) == Decimal("1.36")  # 1.3621
    assert scaled(Decimal("0.05"), Decimal("0.5")) == Decimal("0.03")  # half up, not even
    assert targets(1) == {k: str(v) if isinstance(v, Decimal) else v for k, v in ARTICLE.items()}


def test_too_small_a_scale_is_refused_by_name(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kapok.cli", "simulate", "guangzhou-2020", "--scale", "0.001"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--scale 0.0022 or more" in out.stdout


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest) -> AsyncIterator[list[str]]:
    """`kapok up`'s flags for its databases: SQLite files, or `--postgres URL`, under which
    each service gets a database of its own (``<name>_<service>``), dropped after."""
    async with for_kapok_up(request.param, SERVABLE) as url:
        yield [] if url is None else ["--postgres", url]


def test_the_scenario_through_the_real_processes_reports_the_scaled_figures(
    tmp_path: Path, database: list[str]
) -> None:
    ports = {name: free_port() for name in SERVABLE}
    up = Up(tmp_path / "state", ports, "up.log", *database)
    try:
        up.wait_ready()
        if database:  # each service its own database: one would mix their event logs
            assert "PostgreSQL: one database per service" in up.log()
        flags = [f"--{name}-port={port}" for name, port in ports.items()]
        command = [sys.executable, "-m", "kapok.cli", "simulate", "guangzhou-2020"]
        flags += ["--data-dir", str(up.data_dir)]
        simulator = subprocess.Popen(
            [*command, "--scale", SCALE, "--seed", "7", "--retry-for", "60", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # The hotline killed mid-run: `kapok up` restarts it within seconds, and the
        # simulator sends again what was not answered, with the same Idempotency-Keys.
        hotline = up.pids()["services"]["hotline"]
        wait_until("the first calls recorded", lambda: services_given(up) > 0, 120, up)
        assert simulator.poll() is None, "the scenario ended before the hotline was killed"
        os.kill(hotline, signal.SIGKILL)
        out, err = simulator.communicate(timeout=300)
        played = subprocess.CompletedProcess(simulator.args, simulator.returncode, out, err)
        assert played.returncode == 0, played.stdout + played.stderr[-3000:] + up.log()
        assert "hotline exited with code -9; restarting" in up.log()
        assert "kapok simulate: hotline not answering" in played.stderr, played.stderr
        assert "kapok simulate: hotline answers again after" in played.stderr, played.stderr
        assert "reporting shows the scaled figures exactly" in played.stdout

        base = f"http://127.0.0.1:{ports['reporting']}"
        report = httpx.get(
            f"{base}/api/report", params={"as_of": "2020-03-07"}, headers=up.headers, timeout=10
        )
        figures = report.json()["figures"]
        assert {k: figures[k] for k in ARTICLE} == targets(Decimal(SCALE))
        # Before the outbreak, nothing; the story is spread over the weeks, not one day.
        early = httpx.get(
            f"{base}/api/report", params={"as_of": "2020-01-22"}, headers=up.headers, timeout=10
        )
        assert early.json()["figures"]["services_given"] == 0
        mid = httpx.get(
            f"{base}/api/report", params={"as_of": "2020-02-10"}, headers=up.headers, timeout=10
        )
        assert 0 < mid.json()["figures"]["services_given"] < figures["services_given"]

        # 卫姨: one referral from a disabled caller at 南洲街 became a request delivered
        # medicine and vegetables (and hotline referrals did become aid requests).
        counters = httpx.get(
            f"{base}/api/counters",
            params={
                "as_of": "2020-03-07",
                "metric": "referrals_to_aid",
                "station": "station:nanzhou",
                "grp": "disabled",
            },
            headers=up.headers,
            timeout=10,
        ).json()["counters"]
        assert counters and counters[0]["value"] >= 1

        # The auditor's proof: the three streams replayed from their first message, every
        # hash chain checked, folded again, and compared with the live figures. It finds the
        # bus and the reporting service through the running `kapok up`'s data directory.
        audit = subprocess.run(
            [*AUDIT, "--as-of", "2020-03-07", "--data-dir", str(up.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env={k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")},
        )
        assert audit.returncode == 0, audit.stdout + audit.stderr[-3000:]
        assert f"http://127.0.0.1:{ports['reporting']}" in audit.stderr
        assert "agrees on every figure" in audit.stderr
        replayed = json.loads(audit.stdout)["figures"]
        assert {k: replayed[k] for k in ARTICLE} == targets(Decimal(SCALE))

        # The same seed again: every request carries the same Idempotency-Key, nothing doubles.
        again = subprocess.run(
            [*command, "--scale", SCALE, "--seed", "7", *flags],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert again.returncode == 0, again.stdout + again.stderr[-3000:]
        figures = httpx.get(
            f"{base}/api/report", params={"as_of": "2020-03-07"}, headers=up.headers, timeout=10
        )
        assert {k: figures.json()["figures"][k] for k in ARTICLE} == targets(Decimal(SCALE))
        assert up.ctrl_c() == 0, up.log()
    finally:
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)


def services_given(up: Up) -> int:
    base = f"http://127.0.0.1:{up.ports['reporting']}"
    try:
        report = httpx.get(
            f"{base}/api/report", params={"as_of": "2020-03-07"}, headers=up.headers, timeout=5
        )
        return int(report.json()["figures"]["services_given"])
    except (httpx.HTTPError, ValueError, KeyError):
        return 0
