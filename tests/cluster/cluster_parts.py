"""Two instances of a service on one PostgreSQL database and one nats-server, as real
`kapok serve` processes: start them, load them with commands, kill one with -9, and see
which one holds a lease (README, "Two instances of a service")."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
from harness import processes
from harness.waits import free_port, until
from hotline_stories import at, call_body, place
from nats.aio.client import Client as NATS
from sqlalchemy import text

from shared.bus.naming import Naming
from shared.eventstore import Database, EventStore
from shared.settings import Settings


@dataclass
class Instance:
    """One `kapok serve <service>` process, named by KAPOK_INSTANCE."""

    service: str
    name: str
    port: int
    process: asyncio.subprocess.Process
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            return (await client.get("/api/health")).json()

    async def holds(self, lease: str) -> bool:
        try:
            body = await self.health()
        except httpx.HTTPError:
            return False
        return bool(body.get("leases", {}).get(lease, {}).get("held"))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)


@dataclass
class Cluster:
    """The instances of one service, started one after the other (the first makes the signing
    keys every instance then shares: the data directory is common)."""

    service: str
    env: dict[str, str]
    directory: Path
    instances: list[Instance] = field(default_factory=list)
    started: int = 0

    async def start(self) -> Instance:
        self.started += 1
        name = f"{self.service}-{self.started}"
        env = {**self.env, "KAPOK_INSTANCE": name}
        log = self.directory / f"{name}.log"
        port = free_port()
        process = await processes.serve(self.service, env, log, port)
        instance = Instance(self.service, name, port, process, log)
        self.instances.append(instance)
        async with httpx.AsyncClient(base_url=instance.url) as client:
            await processes.until_answering(client, process, 60)
        return instance

    @property
    def alive(self) -> list[Instance]:
        return [i for i in self.instances if i.process.returncode is None]

    async def holder(self, lease: str, seconds: float = 20) -> Instance:
        """The one live instance that holds ``lease`` (the others say they stand by)."""
        found: list[Instance] = []

        async def one_holds() -> bool:
            held = [i for i in self.alive if await i.holds(lease)]
            found[:] = held
            return len(held) == 1

        await until(f"one {self.service} instance holds the {lease} lease", one_holds, seconds)
        return found[0]

    async def kill_holder(self, lease: str, within_s: float = 10) -> float:
        """kill -9 the instance holding ``lease``; the seconds until another one holds it."""
        holder = await self.holder(lease)
        others = [i for i in self.alive if i is not holder]
        assert others, "no instance to take over"
        holder.kill()
        killed = time.monotonic()
        await holder.process.wait()

        async def taken() -> bool:
            return any([await i.holds(lease) for i in others])

        await until(f"another {self.service} instance took the {lease} lease", taken, within_s)
        return time.monotonic() - killed

    async def stop(self) -> None:
        for instance in self.alive:
            await processes.stop(instance.process)

    def logs(self) -> str:
        return "\n".join(f"--- {i.name}\n{i.log.read_text()[-3000:]}" for i in self.instances)


def cluster_env(settings: Settings, data_dir: Path, database_url: str) -> dict[str, str]:
    """`processes.serve_env` on one PostgreSQL database. Sign-in is not what these stories
    are about (KAPOK_AUTH=0)."""
    env = processes.serve_env(settings, data_dir)
    env["KAPOK_DATABASE_URL"] = database_url
    env["KAPOK_AUTH"] = "0"
    return env


@asynccontextmanager
async def cluster(service: str, env: dict[str, str], directory: Path) -> AsyncIterator[Cluster]:
    running = Cluster(service, env, directory)
    try:
        yield running
    finally:
        await running.stop()


async def open_point(instance: Instance) -> str:
    async with httpx.AsyncClient(base_url=instance.url, timeout=10) as client:
        body = {"place": place(), "opened_at": at(0).isoformat()}
        opened = await client.post("/points", json=body)
    assert opened.status_code == 201, opened.text
    return str(opened.json()["point"])


class Load:
    """Calls recorded without pause through NATS request-reply (the hotline's queue group:
    whichever instance is alive answers), ``concurrency`` at a time, until stopped. Counts
    what was answered 201; a request to an instance killed under it goes unanswered."""

    def __init__(self, nc: NATS, naming: Naming, point: str, concurrency: int = 16) -> None:
        self.nc, self.point = nc, point
        self.subject = naming.command_subject("hotline", "ReceiveCall")
        self.recorded = self.unanswered = 0
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._calls()) for _ in range(concurrency)]

    async def _calls(self) -> None:
        body = orjson.dumps(call_body(self.point))
        while not self._stop.is_set():
            try:
                reply = await self.nc.request(self.subject, body, timeout=3)
            except Exception:  # no responders or no answer: the instance was killed under it
                self.unanswered += 1
                await asyncio.sleep(0.05)
                continue
            status = orjson.loads(reply.data)["status"]
            assert status in (201, 503), reply.data
            self.recorded += status == 201

    async def until_recorded(self, more: int, seconds: float = 30) -> None:
        target = self.recorded + more

        async def enough() -> bool:
            return self.recorded >= target

        await until(f"{more} more calls recorded", enough, seconds)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def stored_count(database_url: str, event_type: str) -> int:
    db = Database(database_url)
    try:
        async with db.read() as conn:
            query = text("SELECT count(*) FROM events WHERE type = :type")
            return int(await conn.scalar(query, {"type": event_type}) or 0)
    finally:
        await db.dispose()


async def stream_holds_store(nc: NATS, naming: Naming, source: str, database_url: str) -> int:
    """The source's stream, message by message, is its store: sequence n is the event at
    position n (id, subject, bytes), no gap, no duplicate, nothing after the head. Returns
    the length."""
    db = Database(database_url)
    try:
        stored = await EventStore(db, source).read_bytes_from(0, 10_000_000)
    finally:
        await db.dispose()
    js = nc.jetstream()
    stream = naming.stream(source)
    state = (await js.stream_info(stream)).state
    assert [e.position for e in stored] == list(range(1, len(stored) + 1)), source
    held = (state.first_seq, state.last_seq, state.messages)
    assert held == (1, len(stored), len(stored)), f"{stream}: {held}, {len(stored)} stored"
    assert len({e.event_id for e in stored}) == len(stored), f"{source}: an id twice"
    sub = await js.subscribe(naming.event_subjects(source), stream=stream, ordered_consumer=True)
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
    return len(stored)


async def until_published(nc: NATS, naming: Naming, source: str, database_url: str) -> None:
    db = Database(database_url)
    store = EventStore(db, source)
    js = nc.jetstream()

    async def caught_up() -> bool:
        head = await store.head()
        return (await js.stream_info(naming.stream(source))).state.last_seq == head

    try:
        await until(f"the {source} stream caught up with its store", caught_up, 30)
    finally:
        await db.dispose()


def kills() -> int:
    """How many kills a story makes: KAPOK_CLUSTER_KILLS (10 for the README's measure), else
    few enough for CI."""
    return int(os.environ.get("KAPOK_CLUSTER_KILLS", "2"))


def summary(times: Sequence[float]) -> str:
    ordered = sorted(times)
    return (
        f"{len(times)} kills: min {ordered[0]:.2f} s, median {ordered[len(ordered) // 2]:.2f} s, "
        f"max {ordered[-1]:.2f} s ({', '.join(f'{t:.2f}' for t in times)})"
    )
