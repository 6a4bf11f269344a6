"""`kapok up` as a user runs it: real processes (nats-server, four services), SQLite files
under one data directory, Ctrl-C to the process group as a terminal sends it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from up_parts import Up, alive, free_port, wait_until

from kapok.cli import SERVABLE
from shared.bus.embedded import port_is_free

pytestmark = pytest.mark.timeout(240)


def test_up_serves_restarts_a_dead_service_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    ports = {name: free_port() for name in SERVABLE}
    first = Up(data_dir, ports, "first.log")
    try:
        pids = first.wait_ready()
        assert set(pids["services"]) == set(SERVABLE)
        out = first.log()
        assert out.index("dashboard") < min(
            out.index(f"{n} ") for n in SERVABLE if n != "reporting"
        )
        assert "port 4222" not in out or "takes a free port" in out
        assert f"dashboard http://127.0.0.1:{ports['reporting']}/\n" in out
        # up.json says where everything listens, for `kapok audit replay` and scripts.
        assert pids["ports"] == ports and pids["nats_url"].startswith("nats://127.0.0.1:")

        # Signed in: the first start made an administrator's token, said where it is, and
        # nothing answers a request without it.
        assert f"administrator token {first.token.split('_')[1]} written to" in out
        hotline = f"http://127.0.0.1:{ports['hotline']}"
        unsigned = httpx.post(f"{hotline}/points", json=point_opened(), timeout=10)
        assert unsigned.status_code == 401, unsigned.text
        # Everything under the data directory is its owner's alone.
        assert data_dir.stat().st_mode & 0o777 == 0o700
        for secret in ("auth/admin.token", "auth/ops.token", "hotline.db", "reporting.db"):
            assert (data_dir / secret).stat().st_mode & 0o077 == 0, secret
        stored = [p for p in data_dir.rglob("*") if p.is_file()]
        assert stored and not [p for p in stored if p.stat().st_mode & 0o077], stored

        # Something recorded through the hotline's public API.
        opened = httpx.post(
            f"{hotline}/points", json=point_opened(), headers=first.headers, timeout=10
        )
        assert opened.status_code == 201, opened.text
        point = opened.json()["point"]
        # Reporting counts it (the bus and the consumer work too).
        report_url = f"http://127.0.0.1:{ports['reporting']}/api/report?as_of=2020-03-07"

        def counted() -> bool:
            figures = httpx.get(report_url, headers=first.headers, timeout=5).json()["figures"]
            return figures["hotline_points_opened"] == 1

        wait_until("reporting counts the point", counted, 30, first)

        # A service that dies is reported and restarted.
        old = pids["services"]["hotline"]
        os.kill(old, signal.SIGKILL)
        new = wait_until(
            "hotline restarted",
            lambda: (p := first.pids().get("services", {}).get("hotline")) not in (None, old) and p,
            30,
            first,
        )
        wait_until("the restarted hotline answers", lambda: first.answers("hotline"), 60, first)
        assert "hotline exited with code -9; restarting" in first.log()
        assert (
            httpx.get(f"{hotline}/points/{point}", headers=first.headers, timeout=5).status_code
            == 200
        )

        pids = first.pids()
        assert pids["services"]["hotline"] == new
        code = first.ctrl_c()
    finally:
        if first.proc.poll() is None:
            os.killpg(first.proc.pid, signal.SIGKILL)
    assert code == 0, first.log()
    every = [pids["up"], pids["nats"], old, *pids["services"].values()]
    assert [p for p in every if alive(p)] == [], first.log()
    assert all(port_is_free(p) for p in ports.values())
    assert "did not stop" not in first.log()
    # Services stopped before nats-server: no one drained a connection to a vanished server.
    assert "Traceback" not in first.log(), first.log()
    assert first.pids() == {}

    # The second `kapok up` on the same data directory picks up where the first stopped.
    second = Up(data_dir, ports, "second.log")
    try:
        second.wait_ready()
        got = httpx.get(f"{hotline}/points/{point}", headers=second.headers, timeout=5)
        assert got.status_code == 200, got.text
        assert got.json()["place"]["station"] == "station:nanzhou"
        figures = httpx.get(report_url, headers=second.headers, timeout=5).json()["figures"]
        assert figures["hotline_points_opened"] == 1  # not lost, not counted twice
        assert second.ctrl_c() == 0, second.log()
    finally:
        if second.proc.poll() is None:
            os.killpg(second.proc.pid, signal.SIGKILL)


def test_a_taken_http_port_is_named_with_its_flag_before_anything_starts(tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVABLE}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports["hotline"]))
        holder.listen()
        up = Up(tmp_path / "state", ports, "taken.log")
        assert up.proc.wait(30) == 2
    out = up.log()
    assert f"port {ports['hotline']}" in out and "--hotline-port" in out, out
    assert "nats-server" not in out and "started" not in out, out


def test_a_postgres_url_it_cannot_use_is_named_and_nothing_starts(tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVABLE}
    up = [sys.executable, "-m", "kapok.cli", "up", "--data-dir", str(tmp_path / "d")]
    up += [f"--{name}-port={port}" for name, port in ports.items()]
    for url, why in (
        ("postgresql+asyncpg://postgres@127.0.0.1:5432/kapok_t_none", "does not exist"),
        (f"sqlite+aiosqlite:///{tmp_path}/x.db", "not a PostgreSQL URL"),
    ):
        out = subprocess.run(
            [*up, "--postgres", url],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 2 and why in out.stdout, out.stdout + out.stderr
        assert "nats-server" not in out.stdout  # refused before anything started


def test_a_killed_nats_server_is_reaped_restarted_and_said_while_commands_keep_working(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "state"
    ports = {name: free_port() for name in SERVABLE}
    up = Up(data_dir, ports, "nats.log")
    try:
        pids = up.wait_ready()
        wait_until("kapok status says all ok", lambda: status(data_dir)[0] == 0, 30, up)
        hotline = f"http://127.0.0.1:{ports['hotline']}"
        report_url = f"http://127.0.0.1:{ports['reporting']}/api/report?as_of=2020-03-07"

        # Given nats-server killed outright under `kapok up`,
        old = pids["nats"]
        os.kill(old, signal.SIGKILL)
        # when a point is opened while it is away (or as it comes back),
        opened = httpx.post(
            f"{hotline}/points", json=point_opened(), headers=up.headers, timeout=10
        )
        # then the command succeeds, its event waiting in the hotline's store,
        assert opened.status_code == 201, opened.text
        # nats-server is reaped (no zombie), started again and said, and up.json has its pid,
        new = wait_until(
            "nats-server restarted", lambda: up.pids().get("nats") not in (None, old), 30, up
        )
        assert not Path(f"/proc/{old}").exists(), "the killed nats-server was left a zombie"
        log = up.log()
        assert f"nats-server (pid {old}) exited with code -9; restarting in 1s" in log
        assert f"(pid {up.pids()['nats']})" in log and new

        # the event reaches reporting once the relay is reconnected,
        def counted() -> bool:
            return (
                httpx.get(report_url, headers=up.headers, timeout=5).json()["figures"][
                    "hotline_points_opened"
                ]
                == 1
            )

        wait_until("reporting counts the point", counted, 60, up)
        # each service said the outage twice (lost, back after its duration), no traceback,
        log = up.log()
        for name in SERVABLE:
            assert log.count(f"{name}: NATS connection lost") == 1, log
            assert log.count(f"{name}: NATS reconnected after") == 1, log
        assert "Traceback" not in log
        # and `kapok status` says all is well again, a line per process.
        code, out = status(data_dir)
        assert code == 0, out
        assert out.count(" ok ") == len(SERVABLE) + 1, out
        assert up.ctrl_c() == 0, up.log()
    finally:
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)
    # Nothing runs there any more: `kapok status` says so with exit code 2.
    assert status(data_dir)[0] == 2


def status(data_dir: Path) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "kapok.cli", "status", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return done.returncode, done.stdout + done.stderr


def point_opened() -> dict[str, object]:
    place = {
        "district": "haizhu",
        "street": "南洲街",
        "station": "station:nanzhou",
        "organisation": "org:haizhu-sw",
    }
    return {"place": place, "opened_at": datetime(2020, 1, 25, tzinfo=UTC).isoformat()}


def test_no_auth_is_for_experiments_and_says_so_loudly(tmp_path: Path) -> None:
    ports = {name: free_port() for name in SERVABLE}
    up = Up(tmp_path / "state", ports, "no-auth.log", "--no-auth")
    try:
        up.wait_ready()
        assert "SIGN-IN IS OFF (--no-auth)" in up.log()
        assert not (up.data_dir / "auth" / "admin.token").exists()
        hotline = f"http://127.0.0.1:{ports['hotline']}"
        opened = httpx.post(f"{hotline}/points", json=point_opened(), timeout=10)
        assert opened.status_code == 201, opened.text
    finally:
        if up.proc.poll() is None:
            assert up.ctrl_c() == 0, up.log()
