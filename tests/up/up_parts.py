"""Helpers for the `kapok up` tests: one `kapok up` process, as a terminal runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from harness.processes import alive
from harness.waits import free_port, until_now

__all__ = ["Up", "alive", "free_port", "wait_until"]


def wait_until(what: str, check: Callable[[], Any], within_s: float, up: Up) -> Any:
    """``check``'s first truthy answer; fail naming ``what``, with the log, when it does not
    come within ``within_s`` or `kapok up` exits first."""

    def look() -> Any:
        if up.proc.poll() is not None:
            raise AssertionError(f"kapok up exited ({up.proc.returncode}) before {what}")
        return check()

    try:
        return until_now(what, look, within_s)
    except AssertionError as failed:
        raise AssertionError(f"{failed}\n{up.log()}") from None


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

    @property
    def token(self) -> str:
        """The administrator's token the first `kapok up` wrote under its data directory."""
        return (self.data_dir / "auth" / "admin.token").read_text().strip()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def pids(self) -> dict[str, Any]:
        try:
            return json.loads((self.data_dir / "up.json").read_text())
        except (OSError, ValueError):
            return {}

    def answers(self, name: str) -> bool:
        path = "/api/health" if name == "reporting" else "/openapi.json"
        try:
            url = f"http://127.0.0.1:{self.ports[name]}{path}"
            # Readiness answers a probe without a token; reporting's figures need one.
            return httpx.get(url, timeout=2).is_success
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
