"""bench/donation.py runs end to end on a tiny N and prints every row (no speed asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_donation_bench_prints_every_row() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.donation", "--batches", "1", "--seconds", "1",
         "--clients", "4", "--campaigns", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = done.stdout.splitlines()
    assert rows[0].startswith("donation benchmark:")
    assert len(rows) == 9
    assert rows[-1].split()[-1] == "0"  # no receipt refused for a race on one campaign
