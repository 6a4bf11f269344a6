"""Every `kapok` command's expected failures end in one clear line and a non-zero exit, never
a traceback: given what a user meets (a port taken, a data directory that cannot be made, a
database URL that cannot be used, services that are not there), when the command runs, then
its last line names the command and what is wrong.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.processes import free_port

SERVICES = ("hotline", "aid", "donation", "reporting")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def kapok(*args: str, cwd: Path, **env: str) -> tuple[int, str]:
    """Run `kapok ARGS` as a terminal would; its exit code and all it printed."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}
    done = subprocess.run(
        [sys.executable, "-m", "kapok.cli", *args],
        cwd=cwd,
        env={**clean, "KAPOK_NATS_URL": f"nats://127.0.0.1:{free_port()}", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def ports(**given: int) -> list[str]:
    return [f"--{name}-port={given.get(name) or free_port()}" for name in SERVICES]


def assert_one_clear_line(code: int, said: str, starts: str, *words: str) -> None:
    assert code != 0, said
    assert "Traceback" not in said, said
    last = said.strip().splitlines()[-1]
    assert last.startswith(starts), said
    assert all(word in last for word in words), last


def test_up_on_a_data_directory_that_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    code, said = kapok("up", "--data-dir", "a-file/data", "--nats-port=0", *ports(), cwd=tmp_path)
    assert_one_clear_line(code, said, "kapok up:", "Not a directory", "a-file")


def test_up_with_a_port_taken(tmp_path: Path, taken_port: int) -> None:
    code, said = kapok("up", "--nats-port=0", *ports(aid=taken_port), cwd=tmp_path)
    assert_one_clear_line(code, said, "kapok up:", str(taken_port), "--aid-port")


def test_serve_with_a_database_url_it_cannot_use(tmp_path: Path) -> None:
    code, said = kapok("serve", "aid", cwd=tmp_path, KAPOK_DATABASE_URL="nosuchdb://x/y")
    assert_one_clear_line(code, said, "kapok serve:", "database URL", "nosuchdb")


def test_serve_with_no_postgresql_at_its_url(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://kapok@127.0.0.1:{free_port()}/kapok"
    code, said = kapok("serve", "aid", cwd=tmp_path, KAPOK_DATABASE_URL=url)
    assert_one_clear_line(code, said, "kapok serve:", "127.0.0.1")


def test_simulate_when_the_services_are_not_there(tmp_path: Path) -> None:
    code, said = kapok("simulate", "guangzhou-2020", "--retry-for", "1", *ports(), cwd=tmp_path)
    assert_one_clear_line(code, said, "kapok simulate:", "not done after retrying")


def test_asyncapi_into_a_directory_that_cannot_be(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    code, said = kapok("asyncapi", "-o", "a-file/asyncapi.json", cwd=tmp_path)
    assert_one_clear_line(code, said, "kapok asyncapi:", "a-file")


def test_nats_on_a_port_taken(tmp_path: Path, taken_port: int) -> None:
    code, said = kapok("nats", "--port", str(taken_port), "--data-dir", "d", cwd=tmp_path)
    assert_one_clear_line(code, said, "kapok nats:", str(taken_port), "already in use")
