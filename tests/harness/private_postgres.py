"""A PostgreSQL server of the test's own, to stop and start again mid-test: initdb into a
temporary directory, pg_ctl on a free port, loopback only, trust authentication.

The shared server at 127.0.0.1:5432 must never be stopped: an outage is made here. initdb
refuses to run as root, so as root the binaries run as the ``postgres`` user (the Debian
package's), in a directory it owns.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.processes import free_port

BIN = Path(os.environ.get("KAPOK_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


@dataclass
class PrivatePostgres:
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> str:
        return str(self.directory / "data")

    def _run(self, program: str, *args: str) -> None:
        command = [str(BIN / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "postgres.log")
        self._run("pg_ctl", "-D", self.data, "-w", "-l", log, "-o", options, "start")

    def stop(self) -> None:
        """A fast shutdown: every connection is cut, as when the server goes away."""
        self._run("pg_ctl", "-D", self.data, "-w", "-m", "fast", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started server; stopped and removed at the end."""
    if not (BIN / "initdb").exists():
        pytest.fail(f"no PostgreSQL binaries in {BIN} (set KAPOK_TEST_PG_BIN)")
    directory = Path(tempfile.mkdtemp(prefix="kapok-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
    server = PrivatePostgres(directory, free_port())
    try:
        server.init()
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
