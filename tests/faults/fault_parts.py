"""What the fault stories share: the 2020 scenario at scale 0.01 played by `kapok simulate`
through a real `kapok up`, the day it has reached, what the system says of itself while a
fault lasts, and the proof once it is over:

- reporting's report as of 2020-03-07 equals the scaled article figures;
- `kapok audit replay` folds the same figures from the bus and agrees with reporting;
- every stream holds its source's store exactly: sequence n is the event at position n (its
  id, subject's source and bytes), each event once, nothing after the store's head.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats
from nats.aio.client import Client as NATS
from up_parts import Up, free_port, wait_until

from kapok.cli import SERVABLE
from kapok.identities import sign_in_options
from kapok.simulate.figures import ARTICLE, targets
from kapok.status import Row, rows
from shared.bus.auth import ADMIN, AUDITOR
from shared.bus.naming import Naming
from shared.eventstore import Database, EventStore
from shared.settings import PRODUCERS

SCALE = "0.01"  # the smallest round scale that leaves every figure above zero
AS_OF = "2020-03-07"
DAYS = 45  # 23 January to 7 March 2020
KAPOK = [sys.executable, "-m", "kapok.cli"]


def clean_env() -> dict[str, str]:
    """This environment without KAPOK_*: the processes find everything through `kapok up`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}


def kapok(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KAPOK, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env() | (env or {}),
    )


class Play:
    """`kapok simulate guangzhou-2020 --scale 0.01` against ``up``, ``speed`` days a second
    at the most (0: flat out); the day it has reached is read off its progress line."""

    def __init__(self, up: Up, seed: int, speed: float = 0.0) -> None:
        self.up = up
        flags = [f"--{name}-port={port}" for name, port in up.ports.items()]
        flags += ["--scale", SCALE, "--seed", str(seed), "--speed", str(speed)]
        flags += ["--data-dir", str(up.data_dir)]
        self.proc = subprocess.Popen(
            # Its own retries, as a user gets them (120 s): longer than any fault here.
            [*KAPOK, "simulate", "guangzhou-2020", *flags],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=clean_env(),
        )
        self.day = 0
        self.err = ""
        self._reader = threading.Thread(target=self._read_progress, daemon=True)
        self._reader.start()

    def _read_progress(self) -> None:
        assert self.proc.stderr is not None
        while chunk := os.read(self.proc.stderr.fileno(), 4096):
            self.err += chunk.decode(errors="replace")
            if found := re.findall(r"\((\d+)/45 days\)", self.err[-400:]):
                self.day = int(found[-1])

    def reaches(self, day: int) -> None:
        """Until it has sent day ``day``'s logs; it must still be playing (a fault is to land
        mid-scenario, with batches in flight)."""
        wait_until(f"the scenario reaches day {day}", lambda: self.day >= day, 180, self.up)
        assert self.proc.poll() is None, f"the scenario ended before day {day}'s fault"

    def finish(self, within_s: float = 240) -> str:
        """Its output, once it said reporting shows the scaled figures exactly."""
        code = self.proc.wait(within_s)
        self._reader.join(5)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read().decode(errors="replace")
        shown = f"{out}\n{self.err[-3000:]}\n{self.up.log()}"
        assert code == 0, shown
        assert "reporting shows the scaled figures exactly" in out, shown
        return out

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


@contextmanager
def kapok_up(
    data_dir: Path, log_name: str, *more: str, ports: dict[str, int] | None = None
) -> Iterator[Up]:
    """`kapok up` on ``data_dir`` (free ports unless given), answering; killed at the end if
    the story did not stop it."""
    up = Up(data_dir, ports or {name: free_port() for name in SERVABLE}, log_name, *more)
    try:
        up.wait_ready()
        yield up
    finally:
        if up.proc.poll() is None:
            os.killpg(up.proc.pid, signal.SIGKILL)


def said(up: Up) -> str:
    """Everything `kapok up` has printed (``Up.log`` keeps only its tail, which a busy
    service's access log soon pushes a supervisor's line out of)."""
    return up.log_path.read_text(errors="replace")


def target() -> dict[str, Any]:
    return targets(Decimal(SCALE))


def report(up: Up) -> dict[str, Any]:
    base = f"http://127.0.0.1:{up.ports['reporting']}"
    answer = httpx.get(
        f"{base}/api/report", params={"as_of": AS_OF}, headers=up.headers, timeout=10
    )
    figures: dict[str, Any] = answer.json()["figures"]
    return {k: figures[k] for k in ARTICLE}


def health(up: Up, name: str) -> tuple[int, dict[str, Any]]:
    """``/api/health`` of ``name``: (status code, body); (0, {}) while it does not answer."""
    try:
        answer = httpx.get(
            f"http://127.0.0.1:{up.ports[name]}/api/health", headers=up.headers, timeout=5
        )
        return answer.status_code, answer.json()
    except (httpx.HTTPError, ValueError):
        return 0, {}


def status(up: Up) -> dict[str, Row]:
    """What `kapok status` prints, a row per process (its own code, run here: the fault's
    moment is too short for a fresh interpreter's start)."""
    return {row.name: row for row in asyncio.run(rows(up.pids(), up.data_dir))}


def until_all_ok(up: Up, after: str, within_s: float = 60) -> None:
    """Until `kapok status` says ok for every process; else fail showing what it says."""
    lines: list[str] = []

    def all_ok() -> bool:
        found = status(up).values()
        lines[:] = [line for row in found for line in row.lines()]
        return len(found) == len(up.ports) + 1 and all(r.status == "ok" for r in found)

    try:
        wait_until(f"every process ok after {after}", all_ok, within_s, up)
    except AssertionError as failed:
        raise AssertionError("kapok status:\n" + "\n".join(lines) + f"\n{failed}") from None


def sqlite_stores(up: Up) -> dict[str, str]:
    return {s: f"sqlite+aiosqlite:///{up.data_dir / s}.db" for s in PRODUCERS}


def assert_exact(up: Up, stores: dict[str, str]) -> dict[str, int]:
    """The proof after a fault (the module's doc); returns each stream's length."""
    assert report(up) == target(), up.log()
    audit = kapok("audit", "replay", "--as-of", AS_OF, "--data-dir", str(up.data_dir))
    assert audit.returncode == 0, audit.stdout + audit.stderr[-3000:]
    assert "agrees on every figure" in audit.stderr, audit.stderr[-3000:]
    replayed = json.loads(audit.stdout)["figures"]
    assert {k: replayed[k] for k in ARTICLE} == target()
    return asyncio.run(streams_hold_stores(up, stores))


@asynccontextmanager
async def bus(up: Up, identity: str = AUDITOR) -> AsyncIterator[NATS]:
    """A connection to the nats-server of ``up``, signed in as one of its identities
    (anonymous connections are refused): the auditor reads every stream, the administrator
    may publish anywhere."""
    url = str(up.pids()["nats_url"])
    options = sign_in_options(up.data_dir, identity)
    nc = await nats.connect(url, connect_timeout=5, allow_reconnect=False, **options)
    try:
        yield nc
    finally:
        await nc.close()


async def streams_hold_stores(up: Up, stores: dict[str, str]) -> dict[str, int]:
    """Each source's stream, message by message, against its store (no gap, no duplicate,
    no stranger); returns each stream's length."""
    naming = Naming()
    lengths: dict[str, int] = {}
    # As the administrator: an ordered consumer is created unnamed, which the auditor may not
    # (an unnamed create takes its name from the body: it could rewrite a service's durable).
    async with bus(up, ADMIN) as nc:
        js = nc.jetstream()
        for source, url in stores.items():
            db = Database(url)
            try:
                stored = await EventStore(db, source).read_bytes_from(0, 10_000_000)
            finally:
                await db.dispose()
            stream = naming.stream(source)
            state = (await js.stream_info(stream)).state
            assert [e.position for e in stored] == list(range(1, len(stored) + 1)), source
            held = (state.first_seq, state.last_seq, state.messages)
            assert held == (1, len(stored), len(stored)), f"{stream}: {held}, {len(stored)} stored"
            assert len({e.event_id for e in stored}) == len(stored), f"{source}: an id twice"
            sub = await js.subscribe(
                naming.event_subjects(source), stream=stream, ordered_consumer=True
            )
            try:
                for event in stored:
                    msg = await sub.next_msg(timeout=10)
                    seq = msg.metadata.sequence.stream
                    assert seq == event.position, f"{stream}: {seq} where {event.position}"
                    assert (msg.headers or {}).get("Nats-Msg-Id") == event.event_id, seq
                    assert msg.subject == naming.event_subject(source, event.type), seq
                    assert msg.data == event.body, f"{stream} {seq}: not the stored bytes"
            finally:
                await sub.unsubscribe()
            lengths[source] = len(stored)
    return lengths
