"""Crashes during the 2020 scenario, on the real processes of `kapok up` (SQLite): reporting's
database made unwritable, kill -9 of each service mid-batch, nats-server frozen (SIGSTOP) and
killed. One scenario run carries them all, one after the other (each once the last is over):
paced at 0.6 days a second at the most so that each lands mid-play; while a fault stops a
service the simulator waits and sends again, then catches up flat out. (The whole tree's
kill: test_outage_and_tree.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fault_parts import (
    Play,
    assert_exact,
    health,
    kapok_up,
    said,
    sqlite_stores,
    status,
    until_all_ok,
)
from up_parts import Up, wait_until

pytestmark = pytest.mark.timeout(420)
SEED = 13


def test_crashes_of_every_process_lose_nothing_and_are_shown_while_they_last(
    tmp_path: Path,
) -> None:
    with kapok_up(tmp_path / "state", "up.log") as up:
        play = Play(up, SEED, speed=0.6)
        try:
            # Given the scenario playing, when reporting's database is unwritable a while,
            play.reaches(2)
            reporting_unwritable(up)
            # each service is killed outright in turn,
            for day, name in ((12, "reporting"), (16, "hotline"), (20, "aid"), (24, "donation")):
                play.reaches(day)
                killed_and_restarted(up, name)
            # and nats-server is frozen for a few seconds, then killed outright,
            play.reaches(28)
            nats_frozen(up)
            play.reaches(32)
            nats_killed(up)
            # then the scenario ends with the scaled figures, the audit agrees, and every
            # stream holds its store's history exactly.
            play.finish()
        finally:
            play.kill()
        assert_exact(up, sqlite_stores(up))
        # Nothing was set aside on the way: every process ok, no dead letter anywhere.
        until_all_ok(up, "the scenario")
        assert up.ctrl_c() == 0, up.log()


def killed_and_restarted(up: Up, name: str) -> None:
    """kill -9 of ``name``: `kapok status` shows it down until `kapok up` has restarted it."""
    old = up.pids()["services"][name]
    os.kill(old, signal.SIGKILL)
    wait_until(f"kapok status shows {name} down", lambda: status(up)[name].status == "down", 10, up)
    wait_until(
        f"{name} restarted and ready",
        lambda: up.pids()["services"].get(name) not in (None, old) and health(up, name)[0] == 200,
        60,
        up,
    )
    assert f"{name} exited with code -9; restarting" in said(up)


def nats_frozen(up: Up) -> None:
    """SIGSTOP of nats-server for about six seconds: `kapok status` shows it down meanwhile."""
    pid = up.pids()["nats"]
    os.kill(pid, signal.SIGSTOP)
    try:
        began = time.monotonic()
        frozen = status(up)["nats-server"]  # its probe waits out its own timeout
        assert frozen.status == "down", frozen.lines()
        time.sleep(max(0.0, 6 - (time.monotonic() - began)))
    finally:
        os.kill(pid, signal.SIGCONT)
    until_all_ok(up, "the freeze")


def nats_killed(up: Up) -> None:
    """kill -9 of nats-server: the hotline says it is reconnecting (its commands still
    succeed, events waiting in its store) until `kapok up` has started it again."""
    old = up.pids()["nats"]
    os.kill(old, signal.SIGKILL)

    def reconnecting() -> bool:
        code, body = health(up, "hotline")
        return code == 200 and any("nats: reconnecting" in p for p in body["problems"])

    wait_until("the hotline's health says NATS is away", reconnecting, 10, up)
    wait_until("nats-server restarted", lambda: up.pids().get("nats") not in (None, old), 30, up)
    assert f"nats-server (pid {old}) exited with code -9; restarting" in said(up)
    until_all_ok(up, "nats-server's restart")


def reporting_unwritable(up: Up) -> None:
    """Reporting's SQLite files immutable for ten seconds (chmod does not stop root, whom
    this suite runs as on CI; `chattr +i` does, on files already open too): its consumer
    waits and retries, never dead-letters; health shows events waiting and its checkpoint
    standing still."""
    code, before = health(up, "reporting")
    assert code == 200, before
    with immutable(up.data_dir, "reporting.db", "reporting.db-wal"):
        time.sleep(1)
        first = checkpoints(up)
        time.sleep(9)
        code, during = health(up, "reporting")
        assert code in (200, 503), during
        assert checkpoints(up) == first, "reporting wrote to an immutable database"
        waiting = [s for s in during["consumers"]["reporting"].values() if s["lag"] > 0]
        assert waiting, f"no events shown waiting while reporting could not write: {during}"
        # and says what it meets, degraded (it serves the figures it has), not ok.
        assert during["status"] in ("degraded", "down"), during
        assert any(s["failing"] for s in during["consumers"]["reporting"].values()), during
    assert "reporting | " in said(up) and "disk I/O error" in said(up)
    until_all_ok(up, "reporting's database is writable again")
    _, after = health(up, "reporting")
    for source in after["consumers"]["reporting"].values():
        assert source["dead_letters"] == 0, after


def checkpoints(up: Up) -> dict[str, int]:
    _, body = health(up, "reporting")
    return {s: v["checkpoint"] for s, v in body["consumers"]["reporting"].items()}


@contextmanager
def immutable(directory: Path, *names: str) -> Iterator[None]:
    paths = [str(directory / name) for name in names]
    subprocess.run(["chattr", "+i", *paths], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *paths], check=True)
