"""Crashes during the 2020 scenario, on the real processes of `kapok up` (SQLite): reporting's
database made unwritable, kill -9 of each service mid-batch, nats-server frozen (SIGSTOP) and
killed, then the whole tree killed, started again on the same data and the scenario played
again with the same seed. One scenario run carries them all, one after the other (each once
the last is over): paced at 0.75 days a second at the most so that each lands mid-play; while
a fault stops a service the simulator waits and sends again, then catches up flat out."""

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
    kapok,
    kapok_up,
    sqlite_stores,
    status,
    until_all_ok,
)
from harness.processes import descendants
from up_parts import Up, wait_until

pytestmark = pytest.mark.timeout(480)
SEED = 13


def test_crashes_of_every_process_lose_nothing_and_are_shown_while_they_last(
    tmp_path: Path,
) -> None:
    with kapok_up(tmp_path / "state", "first.log") as first:
        play = Play(first, SEED, speed=0.75)
        try:
            # Given the scenario playing, when reporting's database is unwritable a while,
            play.reaches(2)
            reporting_unwritable(first)
            # each service is killed outright in turn,
            for day, name in ((14, "reporting"), (17, "hotline"), (20, "aid"), (23, "donation")):
                play.reaches(day)
                killed_and_restarted(first, name)
            # nats-server is frozen for a few seconds, then killed outright,
            play.reaches(26)
            nats_frozen(first)
            play.reaches(30)
            nats_killed(first)
            # and at last every process of `kapok up` is killed at once (the supervisor,
            # nats-server, the services, and the simulator with them),
            play.reaches(34)
            for pid in [first.proc.pid, *descendants(first.proc.pid)]:
                os.kill(pid, signal.SIGKILL)
        finally:
            play.kill()
        first.proc.wait(10)
    # then `kapok status` says nothing runs there;
    gone = kapok("status", "--data-dir", str(first.data_dir))
    assert gone.returncode == 2, gone.stdout + gone.stderr
    # `kapok up` again on the same data, the same seed played again from its start ends with
    # the scaled figures (what was done before is not done twice), the audit agrees, and
    # every stream holds its store's history exactly.
    with kapok_up(first.data_dir, "again.log", ports=first.ports) as again:
        Play(again, SEED).finish()
        assert_exact(again, sqlite_stores(again))
        assert again.ctrl_c() == 0, again.log()


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
    assert f"{name} exited with code -9; restarting" in up.log()


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
    assert f"nats-server (pid {old}) exited with code -9; restarting" in up.log()
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
    assert "disk I/O error" in up.log() or "readonly" in up.log()
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
