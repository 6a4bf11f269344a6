"""One run: fill the stores, then on each of its own nats-servers (sync "default" and
"always") warm every measure up, time it, and print the table."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import nats
from nats.aio.client import Client as NATS
from sqlalchemy.engine import make_url

from bench import publish, pull
from bench.data import SOURCE, Message, fill_store, messages, sqlite_url
from bench.report import Row, compute_ratios, durability, load, machine, table, write_json
from shared import signing
from shared.bus.embedded import EmbeddedNats, Sync
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams, event_stream_specs
from shared.collector import tune_gc
from shared.contracts.signatures import Ring
from shared.eventstore import EventStore

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
TARGET = 0.5  # relay ≥ 0.5 × raw publish, runner ≥ 0.5 × raw pull

# A measure: run once over the warm-up events (True) or the timed ones (False); seconds.
Once = Callable[[bool], Awaitable[float]]


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


@dataclass(slots=True)
class Data:
    """The events, twice: a small store to warm up on, the full one to time."""

    stores: dict[bool, EventStore]  # by "warm"
    msgs: dict[bool, list[Message]]
    ring: Ring  # the keys the events were signed with: the runner checks every signature

    def n(self, warm: bool) -> int:
        return len(self.msgs[warm])


class Postgres:
    """A fresh database ``kapok_bench_<hex>`` for the runner, dropped at the end."""

    def __init__(self, server: str) -> None:
        self.server = make_url(server)
        self.name = f"kapok_bench_{uuid.uuid4().hex[:12]}"
        self.url = self.server.set(database=self.name).render_as_string(hide_password=False)
        self.version: str | None = None

    async def _admin(self, sql: str) -> None:
        dsn = self.server.set(drivername="postgresql").render_as_string(hide_password=False)
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            self.version = str(await conn.fetchval("SHOW server_version")).split()[0]
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> None:
        await self._admin(f'CREATE DATABASE "{self.name}"')

    async def drop(self) -> None:
        await self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


@dataclass(slots=True)
class Server:
    """One of the bench's nats-servers: fresh names for every run of a measure."""

    nc: NATS
    url: str
    sync: Sync
    runs: int = 0
    filled: dict[bool, Naming] = field(default_factory=dict)  # the relay's last streams

    def name(self, tag: str) -> str:
        """Unique across servers too: the runner's checkpoints share one PostgreSQL database."""
        self.runs += 1
        return f"{tag}_{self.sync}{self.runs}"

    async def naming(self, tag: str) -> Naming:
        """A new, empty stream ``B<NAME>_HOTLINE`` on subjects ``b<name>.hotline.*``."""
        unique = self.name(tag)
        naming = Naming(root=f"b{unique}", stream_prefix=f"B{unique.upper()}_")
        await ensure_streams(self.nc, event_stream_specs(naming, [SOURCE], 1, 120.0))
        return naming

    @asynccontextmanager
    async def stream(self, tag: str) -> AsyncIterator[Naming]:
        """A new stream for one run, deleted after it (to spare the disk)."""
        naming = await self.naming(tag)
        try:
            yield naming
        finally:
            js = self.nc.jetstream()
            for name in (naming.stream(SOURCE), naming.dead_letter_stream):
                await js.delete_stream(name)


async def timed(row: Row, once: Once, repeat: int) -> Row:
    """Warm up, then the best of ``repeat`` timed runs."""
    say(f"{row.measure} ({row.sync}) …")
    await once(True)
    best = None
    for _ in range(repeat):
        gc.collect()
        seconds = await once(False)
        best = seconds if best is None else min(best, seconds)
    row.seconds = best
    say(f"{row.measure} ({row.sync}): {row.rate:,.0f}/s")
    return row


def measures(
    s: Server, data: Data, work: Path, pg: Postgres | None, args: argparse.Namespace
) -> list[tuple[Row, Once | None]]:
    """Every row, in the printed order, with how to run it (None: skipped, see its note)."""
    nc, sync, n = s.nc, s.sync, data.n(False)

    def row(key: str, measure: str, versus: str | None = None, target: bool = False) -> Row:
        return Row(key, measure, sync, n, versus=versus, target=TARGET if target else None)

    async def raw_publish(warm: bool) -> float:
        async with s.stream("rp") as naming:
            return await publish.raw_publish(nc, naming, SOURCE, data.msgs[warm])

    async def raw_publish_3h(warm: bool) -> float:
        async with s.stream("rh") as naming:
            msgs = data.msgs[warm]
            return await publish.raw_publish(nc, naming, SOURCE, msgs, relay_headers=True)

    async def publish_async(warm: bool) -> float:
        async with s.stream("pa") as naming:
            return await publish.js_publish_async(nc, naming, SOURCE, data.msgs[warm])

    async def relay(warm: bool) -> float:
        # Also fills the streams every pull measure reads.
        s.filled[warm] = await s.naming("relay")
        return await publish.relay_publish(nc, s.filled[warm], data.stores[warm], data.n(warm))

    async def raw_pull(warm: bool) -> float:
        stream = s.filled[warm].stream(SOURCE)
        return await pull.raw_pull(nc, stream, s.name("raw"), data.n(warm))

    async def fetch(warm: bool) -> float:
        return await pull.js_fetch(nc, s.filled[warm], SOURCE, s.name("fetch"), data.n(warm))

    async def faststream(warm: bool) -> float:
        durable = s.name("fs")
        return await pull.faststream_batch(s.url, s.filled[warm], SOURCE, durable, data.n(warm))

    def runner(url: str) -> Once:
        async def once(warm: bool) -> float:
            durable = s.name("runner")
            return await pull.runner_drain(
                nc, s.filled[warm], SOURCE, url, durable, data.n(warm), data.ring
            )

        return once

    publish_rows: list[tuple[Row, Once | None]] = [
        (
            row("raw_publish", "raw publish: nc.publish + Nats-Msg-Id, acks on one inbox"),
            raw_publish,
        ),
        (
            row("raw_publish_3h", "  same, + expected-last-sequence", "raw_publish"),
            raw_publish_3h,
        ),
        (row("publish_async", "nats-py js.publish_async", "raw_publish"), publish_async),
        (row("relay", "relay: OutboxRelay.publish_pending(), SQLite", "raw_publish", True), relay),
    ]
    pull_rows: list[tuple[Row, Once | None]] = [
        (row("raw_pull", "raw pull: MSG.NEXT batch 1000 on one inbox, +ACK each"), raw_pull),
        (row("fetch", "nats-py pull_subscribe + fetch(1000), ack each", "raw_pull"), fetch),
        (row("faststream", "FastStream batch pull subscriber (1000)", "raw_pull"), faststream),
        (
            row("runner_sqlite", "runner: ConsumerRunner.drain(), SQLite", "raw_pull", True),
            runner(sqlite_url(work / f"runner-{sync}.db")),
        ),
        (
            row("runner_postgres", "runner: ConsumerRunner.drain(), PostgreSQL", "raw_pull", True),
            runner(pg.url) if pg else None,
        ),
    ]
    skipped = {"faststream": args.no_faststream and "skipped (--no-faststream)"}
    skipped["runner_postgres"] = pg is None and "skipped (no PostgreSQL)"
    for r, _ in pull_rows:
        r.note = skipped.get(r.key) or ""
    return publish_rows + [(r, None if r.note else once) for r, once in pull_rows]


async def bench_server(
    sync: Sync, work: Path, data: Data, pg: Postgres | None, args: argparse.Namespace
) -> tuple[str, list[Row]]:
    """The server's version and the rows measured on it."""
    nats_server = EmbeddedNats(work / f"nats-{sync}", port=0, sync=sync)
    await asyncio.to_thread(nats_server.start)
    version = nats_server.status.version if nats_server.status else "?"
    say(f"nats-server {version} (sync {sync}) on {nats_server.url}")
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    rows = []
    try:
        for row, once in measures(Server(nc, nats_server.url, sync), data, work, pg, args):
            rows.append(row)
            if once is None:
                continue
            if row.key == "faststream":  # optional: a failure becomes a note
                try:
                    await timed(row, once, args.repeat)
                except Exception as error:
                    row.seconds, row.note = None, f"failed: {type(error).__name__}"
                    say(f"{row.measure}: {error!r}")
            else:
                await timed(row, once, args.repeat)
    finally:
        await nc.close()
        await asyncio.to_thread(nats_server.stop)
    return version, rows


async def bench(args: argparse.Namespace) -> int:
    n = args.events
    load_at_start = load()
    if load_at_start and load_at_start > 0.5 * (os.cpu_count() or 1):
        say(f"load average {load_at_start} on {os.cpu_count()} CPUs: other work lowers the numbers")
    work = Path(tempfile.mkdtemp(prefix="kapok-bench-"))
    pg: Postgres | None = None
    stores: dict[bool, EventStore] = {}
    try:
        began = time.perf_counter()
        say(f"filling a SQLite event store with {n:,} events (append_all, chunks of 5000) …")
        # Signed as the services sign (every 500th event and each append's last).
        signer = signing.signer(work / "signing", SOURCE)
        stores[False] = await fill_store(work / "events.db", n, signer)
        stores[True] = await fill_store(work / "warm.db", max(200, min(5000, n // 10)), signer)
        tune_gc()  # as every Kapok service does once started (shared/collector.py)
        ring = signing.ring(work / "signing")
        assert ring is not None
        msgs = {warm: await messages(store) for warm, store in stores.items()}
        data = Data(stores, msgs, ring)
        say(f"stores filled in {time.perf_counter() - began:.1f} s")
        if not args.no_postgres:
            pg = Postgres(args.postgres_url)
            try:
                await pg.create()
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                say(f"PostgreSQL at {pg.server.render_as_string()} not usable ({error}): skipped")
                pg = None
        rows: list[Row] = []
        nats_version = "?"
        for sync in args.sync:
            nats_version, measured = await bench_server(sync, work, data, pg, args)
            rows += measured
        compute_ratios(rows)
        info = machine(nats_version, pg.version if pg else None, load_at_start)
        body = statistics.fmean(len(body) for _, body, _ in data.msgs[False])
        print(table(info, n, body, rows, args.repeat))
        line = durability(rows)
        if line:
            print(f"\n{line}")
        if args.json:
            write_json(args.json, info, n, body, rows)
        return 0
    finally:
        for store in stores.values():
            await store.db.dispose()
        if pg is not None:
            await pg.drop()
        shutil.rmtree(work, ignore_errors=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Kapok's hot paths against the raw JetStream limits, on its own nats-servers.",
    )
    parser.add_argument("--events", type=int, default=100_000, metavar="N", help="default 100,000")
    parser.add_argument("--quick", action="store_true", help="10,000 events")
    parser.add_argument("--repeat", type=int, default=1, metavar="R", help="best of R timed runs")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    parser.add_argument(
        "--sync",
        choices=["default", "always", "both"],
        default="both",
        help="which nats-server fsync setting(s) to measure (default: both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("KAPOK_TEST_POSTGRES_URL") or DEFAULT_POSTGRES,
        help="server for the runner's PostgreSQL measure (a fresh database is made there)",
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-faststream", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.events = 10_000
    if args.events < 1 or args.repeat < 1:
        parser.error("--events and --repeat must be at least 1")
    args.sync = ["default", "always"] if args.sync == "both" else [args.sync]
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(bench(parse(argv)))
