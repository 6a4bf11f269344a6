"""On PostgreSQL (`kapok up --postgres` on a server of the test's own, every service's
database on it), during the 2020 scenario: the server stopped for about eight seconds, then
every process of `kapok up` killed at once, `kapok up` started again on the same data and
the scenario played again from its start with the same seed."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from fault_parts import (
    Play,
    assert_exact,
    health,
    kapok,
    kapok_up,
    said,
    status,
    until_all_ok,
)
from harness.private_postgres import PrivatePostgres, private_postgres
from harness.processes import descendants
from sqlalchemy.engine import make_url
from up_parts import Up, wait_until

from kapok.cli import SERVABLE
from shared.settings import PRODUCERS

pytestmark = [pytest.mark.timeout(420), pytest.mark.postgres]
SEED = 17


def test_a_postgres_outage_then_the_whole_tree_killed_lose_nothing(tmp_path: Path) -> None:
    with private_postgres() as server:
        on_postgres = ("--postgres", server.url)
        with kapok_up(tmp_path / "state", "first.log", *on_postgres) as first:
            play = Play(first, SEED, speed=2.0)
            try:
                # Given the scenario playing, when PostgreSQL stops for a while,
                play.reaches(8)
                postgres_away(first, server)
                # and later every process of `kapok up` is killed at once (the supervisor,
                # nats-server, the services, and the simulator with them),
                play.reaches(20)
                for pid in [first.proc.pid, *descendants(first.proc.pid)]:
                    os.kill(pid, signal.SIGKILL)
            finally:
                play.kill()
            first.proc.wait(10)
        # then the hotline had answered the simulator 503 meanwhile (which sent them again),
        # said once when the outage began and once when it ended, never with a traceback;
        log = said(first)
        assert "Traceback" not in log, first.log()
        back = re.findall(
            r"hotline .*the database is back after [\d.]+s \((\d+) requests answered 503", log
        )
        assert len(back) == 1 and int(back[0]) > 0, first.log()
        # `kapok status` says nothing runs there once the tree is dead;
        gone = kapok("status", "--data-dir", str(first.data_dir))
        assert gone.returncode == 2, gone.stdout + gone.stderr
        # `kapok up` again on the same data, the same seed played again from its start ends
        # with the scaled figures (what was done before is not done twice), the audit
        # agrees, and every stream holds its store's history exactly.
        with kapok_up(first.data_dir, "again.log", *on_postgres, ports=first.ports) as again:
            Play(again, SEED).finish()
            base = make_url(server.url)
            stores = {
                s: base.set(database=f"{base.database}_{s}").render_as_string(False)
                for s in PRODUCERS
            }
            assert_exact(again, stores)
            until_all_ok(again, "the scenario played again")
            assert again.ctrl_c() == 0, again.log()


def postgres_away(up: Up, server: PrivatePostgres) -> None:
    """PostgreSQL stopped for about eight seconds: every service says its database is
    unreachable (503, not ready), and so does `kapok status`; all ready again after."""
    server.stop()
    began = time.monotonic()
    try:
        for name in SERVABLE:
            wait_until(f"{name} not ready", lambda n=name: unreachable(up, n), 10, up)
        rows = status(up)
        for name in SERVABLE:
            assert rows[name].status == "down", rows[name].lines()
        time.sleep(max(0.0, 8 - (time.monotonic() - began)))
    finally:
        server.start()
    for name in SERVABLE:
        wait_until(f"{name} ready again", lambda n=name: health(up, n)[0] == 200, 60, up)


def unreachable(up: Up, name: str) -> bool:
    code, body = health(up, name)
    return code == 503 and any("database: unreachable" in p for p in body["problems"])
