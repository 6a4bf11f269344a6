"""`kapok up` on a fresh data directory: its nats-server takes only Kapok's identities, whose
seeds it made once, privately, and never shows; the services work under them."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
from pathlib import Path

import nats
import pytest
from test_operator import a_point_is_counted
from up_parts import Up, free_port

from kapok.cli import SERVABLE
from kapok.identities import kapok_bus
from shared.bus.auth import Keyring, public_key
from shared.bus.naming import Naming

pytestmark = pytest.mark.timeout(240)
SEED = re.compile(r"SU[A-Z2-7]{50,}")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_seeds_are_made_once_privately_and_re_used(tmp_path: Path) -> None:
    identities = kapok_bus(Naming()).identities()
    keyring = Keyring.of(tmp_path)
    first = keyring.ensure(identities)
    assert sorted(first) == sorted(
        ["hotline", "aid", "donation", "people", "reporting", "admin", "auditor"]
    )
    assert mode(keyring.directory) == 0o700
    for identity, key in first.items():
        seed = keyring.seed_path(identity).read_bytes()
        assert mode(keyring.seed_path(identity)) == 0o600 and SEED.fullmatch(seed.decode())
        assert public_key(seed) == key and key.startswith("U")
    assert len(set(first.values())) == len(first)
    assert keyring.ensure(identities) == first


def test_kapok_up_refuses_strangers_and_its_services_work_under_their_identities(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "state"
    ports = {name: free_port() for name in SERVABLE}
    up = Up(data_dir, ports, "up.log")
    try:
        pids = up.wait_ready()
        keyring = Keyring.of(data_dir)
        assert mode(keyring.directory) == 0o700
        assert all(mode(keyring.seed_path(n)) == 0o600 for n in [*SERVABLE, "admin", "auditor"])
        config = data_dir / "nats" / "nats-server.conf"
        assert mode(config) == 0o600
        assert "authorization" in config.read_text() and not SEED.search(config.read_text())

        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            asyncio.run(
                nats.connect(pids["nats_url"], allow_reconnect=False, max_reconnect_attempts=0)
            )
        a_point_is_counted(up)
        assert up.ctrl_c() == 0, up.log()
    finally:
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)
    whole_log = up.log_path.read_text() + (data_dir / "nats" / "nats-server.log").read_text()
    assert not SEED.search(whole_log)
    assert "Violation" not in whole_log, whole_log[-3000:]
