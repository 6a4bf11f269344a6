"""An operator's own nats-server with exactly the accounts block the README shows, the keys
from `kapok bus identities`, and `kapok up --nats` on it: every service signs in with its own
identity, the administrator provisions, and an event travels from the hotline to reporting."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import nats
import pytest
from test_up import point_opened
from up_parts import Up, free_port, wait_until

from kapok.cli import SERVABLE
from kapok.identities import kapok_bus
from shared.bus.auth import ADMIN, Keyring, operator_config
from shared.bus.embedded import EmbeddedNats, ServerAuth
from shared.bus.naming import Naming

pytestmark = pytest.mark.timeout(240)
README = Path(__file__).resolve().parents[2] / "README.md"
KAPOK = [sys.executable, "-m", "kapok.cli"]


def readme_block() -> str:
    text = README.read_text()
    found = re.search(
        r"The accounts block for an operator's nats-server.*?```conf\n(.*?)```", text, re.S
    )
    assert found, "README: the operator's accounts block is missing"
    return found.group(1)


def test_the_readme_shows_the_block_kapok_prints() -> None:
    printed = subprocess.run(
        [*KAPOK, "bus", "identities", "--config"], capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert readme_block() == printed.stdout == operator_config(kapok_bus(Naming())) + "\n"


def test_kapok_up_on_an_operators_server_configured_as_the_readme_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "state"
    keys = subprocess.run(
        [*KAPOK, "bus", "identities", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")},
    )
    assert keys.returncode == 0, keys.stderr
    for line in keys.stdout.splitlines():
        name, _, key = line.partition("=")
        assert re.fullmatch(r"KAPOK_[A-Z]+_NKEY", name) and key.startswith("U"), line
        monkeypatch.setenv(name, key)  # the server takes its keys from its environment
    keyring = Keyring.of(data_dir)
    operator = ServerAuth(readme_block(), keyring.seed_path(ADMIN), ADMIN)
    with EmbeddedNats(tmp_path / "operator", port=0, server_auth=operator) as server:
        assert readme_block() in server.config_path.read_text()
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            import asyncio

            asyncio.run(nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0))
        ports = {name: free_port() for name in SERVABLE}
        up = Up(data_dir, ports, "up.log", f"--nats={server.url}")
        try:
            up.wait_ready()
            a_point_is_counted(up)
            assert up.ctrl_c() == 0, up.log()
        finally:
            if up.proc.poll() is None:
                os.killpg(up.proc.pid, signal.SIGKILL)
        log = server.log_path.read_text() if server.log_path else ""
        assert "Violation" not in log, log  # nats-server logs every refusal
        assert "Traceback" not in up.log(), up.log()


def a_point_is_counted(up: Up) -> None:
    """A point opened through the hotline's API shows in reporting's figures: the relay, the
    bus and the consumer all work under their identities."""
    hotline = f"http://127.0.0.1:{up.ports['hotline']}"
    opened = httpx.post(f"{hotline}/points", json=point_opened(), headers=up.headers, timeout=10)
    assert opened.status_code == 201, opened.text
    report = f"http://127.0.0.1:{up.ports['reporting']}/api/report?as_of=2020-03-07"

    def counted() -> bool:
        return (
            httpx.get(report, headers=up.headers, timeout=5).json()["figures"][
                "hotline_points_opened"
            ]
            == 1
        )

    wait_until("reporting counts the point", counted, 30, up)
