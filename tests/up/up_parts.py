"""Helpers for the `kapok up` tests: one `kapok up` process, as a terminal runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(what: str, check: Callable[[], Any], within_s: float, up: Up) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` with the log."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        if up.proc.poll() is not None:
            raise AssertionError(
                f"kapok up exited ({up.proc.returncode}) before {what}\n{up.log()}"
            )
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {within_s}s\n{up.log()}")


class Up:
    """One `kapok up` process in a process group of its own (as a terminal runs a job)."""

    def __init__(self, data_dir: Path, ports: dict[str, int], log_name: str, *more: str) -> None:
        self.data_dir = data_dir
        self.ports = ports
        self.log_path = data_dir.parent / log_name
        flags = [f"--{name}-port={port}" for name, port in ports.items()]
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "kapok.cli",
                    "up",
                    "--data-dir",
                    str(data_dir),
                    "--nats-port=0",
                    *flags,
                    *more,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def pids(self) -> dict[str, Any]:
        try:
            return json.loads((self.data_dir / "up.json").read_text())
        except (OSError, ValueError):
            return {}

    def answers(self, name: str) -> bool:
        path = "/api/health" if name == "reporting" else "/openapi.json"
        try:
            return httpx.get(f"http://127.0.0.1:{self.ports[name]}{path}", timeout=2).is_success
        except httpx.HTTPError:
            return False

    def wait_ready(self) -> dict[str, Any]:
        for name in self.ports:
            wait_until(f"{name} answers", lambda n=name: self.answers(n), 90, self)
        return self.pids()

    def ctrl_c(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise AssertionError(f"kapok up did not stop within 60s\n{self.log()}") from None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running; only its parent had not reaped it yet.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
