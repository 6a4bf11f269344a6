"""The benchmark runs end to end on a tiny N and prints every row (no speed is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEASURES = (
    "raw publish",
    "same, + expected-last-sequence",
    "js.publish_async",
    "relay: OutboxRelay.publish_pending()",
    "raw pull",
    "fetch(1000)",
    "FastStream batch pull subscriber",
    "runner: ConsumerRunner.drain(), SQLite",
    "runner: ConsumerRunner.drain(), PostgreSQL",
)


def test_bench_prints_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--events", "2000", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = done.stdout
    assert "| measure" in table and "events/s" in table and "vs raw" in table
    assert "nats-server" in table and "CPUs" in table
    for measure in MEASURES:
        rows = [line for line in table.splitlines() if line.startswith("|") and measure in line]
        assert len(rows) == 2, f"{measure!r}: {rows}"  # sync default and always
    numbers = json.loads(out.read_text())
    assert numbers["events"] == 2000
    assert len(numbers["rows"]) == 2 * len(MEASURES)
    # Every measure either has a rate or says why not (PostgreSQL absent, FastStream failed).
    assert all(row["events_per_s"] or row["note"] for row in numbers["rows"])


def test_reporting_bench_prints_every_row(tmp_path: Path) -> None:
    """A tiny history, one round, one second of commands; the live figures must equal the
    replay's (the bench fails otherwise)."""
    out = tmp_path / "reporting.json"
    argv = ["--events", "3000", "--seconds", "1", "--rate", "100", "--json", str(out)]
    command = [sys.executable, "-m", "bench.reporting", *argv]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    for measure in ("raw pull, +ACK", "raw pull, no acks", "live fold", "audit replay",
                    "peak RSS", "p50", "p99"):  # fmt: skip
        assert measure in done.stdout, measure
    numbers = json.loads(out.read_text())
    assert numbers["events"] == 3000
    [round_] = numbers["rounds"]
    assert round_["replay_equals_live"] and round_["fold_peak_kib"] > 0
    assert all(round_[k] > 0 for k in ("raw_ack", "raw_no_ack", "fold", "replay"))
    assert numbers["latency"][0]["sent"] == 100


def test_the_scenario_bench_plays_a_small_scale_through_kapok_up(tmp_path: Path) -> None:
    """The scenario benchmark at a hundredth of the article: it fails unless reporting shows
    the scaled figures; every process's CPU and memory are in its output."""
    out = tmp_path / "simulate.json"
    command = [sys.executable, "-m", "bench.simulate", "--scale", "0.01", "--json", str(out)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "report shows the final figures" in done.stdout and "target:" not in done.stdout
    numbers = json.loads(out.read_text())
    assert numbers["events"]["HOTLINE"] > 6000 and numbers["events"]["AID"] > 100
    assert set(numbers["cpu_s"]) >= {"hotline", "aid", "donation", "reporting", "nats-server"}
    assert all(numbers["peak_rss_mb"][name] > 0 for name in ("hotline", "reporting"))
