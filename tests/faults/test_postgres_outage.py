"""A PostgreSQL outage during the 2020 scenario: `kapok up --postgres` on a server of the
test's own (every service's database on it), stopped for about eight seconds mid-play."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fault_parts import Play, assert_exact, health, kapok_up, status
from harness.private_postgres import private_postgres
from sqlalchemy.engine import make_url
from up_parts import Up, wait_until

from kapok.cli import SERVABLE
from shared.settings import PRODUCERS

pytestmark = [pytest.mark.timeout(420), pytest.mark.postgres]
SEED = 17


def test_a_postgres_outage_answers_503_says_so_and_loses_nothing(tmp_path: Path) -> None:
    with (
        private_postgres() as server,
        kapok_up(tmp_path / "state", "up.log", "--postgres", server.url) as up,
    ):
        play = Play(up, SEED, speed=2.0)
        try:
            # Given the scenario playing on PostgreSQL, when the server stops,
            play.reaches(8)
            server.stop()
            began = time.monotonic()
            try:
                # then every service says its database is unreachable, not ready (503),
                for name in SERVABLE:
                    wait_until(f"{name} not ready", lambda n=name: unreachable(up, n), 10, up)
                # and so does `kapok status`, a line per service,
                rows = status(up)
                for name in SERVABLE:
                    assert rows[name].status == "down", rows[name].lines()
                time.sleep(max(0.0, 8 - (time.monotonic() - began)))
            finally:
                server.start()
            # and once it is back, the simulator's requests sent again get through,
            for name in SERVABLE:
                wait_until(f"{name} ready again", lambda n=name: health(up, n)[0] == 200, 60, up)
            play.finish()
        finally:
            play.kill()
        # the scenario ends with the scaled figures, the audit agrees, the streams are exact,
        base = make_url(server.url)
        stores = {
            s: base.set(database=f"{base.database}_{s}").render_as_string(False) for s in PRODUCERS
        }
        assert_exact(up, stores)
        # and the hotline answered the simulator 503 meanwhile (which it sent again), said
        # once when the outage began and once when it ended, never with a traceback.
        log = up.log_path.read_text(errors="replace")
        assert "Traceback" not in log, up.log()
        back = re.findall(
            r"hotline .*the database is back after [\d.]+s \((\d+) requests answered 503", log
        )
        assert len(back) == 1 and int(back[0]) > 0, up.log()
        assert up.ctrl_c() == 0, up.log()


def unreachable(up: Up, name: str) -> bool:
    code, body = health(up, name)
    return code == 503 and any("database: unreachable" in p for p in body["problems"])
