"""The live fold's write cost alone: `apply_batch` in real transactions, no NATS.

    python -m bench.reporting_write [--events 300000] [--batch 1000] [--postgres URL]
                                    [--no-sqlite]

Makes the reporting benchmark's history (`bench.reporting_data.History`: sealed events of
the three sources), decodes them with the contracts' registry (untimed), and writes them a
batch at a time, each source's batches of ``--batch`` events as the consumer runner would
pull them in catch-up, with `services.reporting.adapters.counters.apply_batch` in a
`Database.write()` transaction each, on a fresh SQLite file (and, with ``--postgres``, on a
fresh database of that server, dropped after).

CPU time, not wall time (the machine is shared): ``time.process_time`` covers aiosqlite's
thread too. Garbage collection is tuned as in the service (`shared.collector.tune_gc`). Per
event it prints the whole transaction (fold, write, commit), the fold alone (the same
batches folded in memory), their difference (the write), the write in the first and last
thirds (the table grows), and the counter rows written per event. On PostgreSQL the server's
backends' CPU is read from ``/proc`` (same machine) and printed beside. Then the reads the
service makes (the report as of a day, the dashboard's, ``/metrics``'s, a filtered daily
series, every row), each timed and fingerprinted, so a schema change can be checked for the
same answers.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy import text

from bench.procs import cpu_seconds
from bench.reporting_data import History
from services.reporting.adapters.counters import KEY_COLUMNS, CounterStore, apply_batch
from services.reporting.domain.fold import Fold
from shared.collector import tune_gc
from shared.contracts import REGISTRY
from shared.contracts.envelope import Envelope
from shared.eventstore.database import Database

SERVICES = ["calls_received", "follow_ups_completed"]


def batches(events: int, size: int) -> Iterator[list[Envelope[Any]]]:
    """Each source's events in batches of ``size``, in the order a catch-up pulls them."""
    history = History(events)
    pending: dict[str, list[Envelope[Any]]] = {}
    while history.made < history.count:
        for source, messages in history.chunk(20_000).items():
            held = pending.setdefault(source, [])
            held.extend(REGISTRY.decode(body) for _, body, _ in messages)
            while len(held) >= size:
                yield held[:size]
                del held[:size]
    for held in pending.values():
        if held:
            yield held


async def backends_cpu(server: str, database: str) -> dict[int, float]:
    """CPU seconds of each server backend on ``database``, from /proc (same machine)."""
    conn = await asyncpg.connect(server)
    try:
        rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
    finally:
        await conn.close()
    return {r["pid"]: cpu_seconds(str(r["pid"])) for r in rows}


async def write(db: Database, events: int, size: int) -> dict[str, float]:
    store = CounterStore(db)
    await store.setup()
    tune_gc()  # as `kapok serve reporting` does once started
    # Per batch: events, CPU of the whole transaction, CPU of the same fold in memory.
    spent: list[tuple[int, float, float]] = []
    rows = 0
    for batch in batches(events, size):
        before = time.process_time()
        fold = Fold()
        fold.apply_all(batch)
        folded = time.process_time() - before
        rows += sum(1 for value in fold.increments.values() if value)
        before = time.process_time()
        async with db.write() as conn:
            await apply_batch(conn, batch)
        spent.append((len(batch), time.process_time() - before, folded))

    def per_event(part: list[tuple[int, float, float]], what: Callable[[float, float], float]):
        return sum(what(t, f) for _, t, f in part) * 1e6 / sum(n for n, _, _ in part)

    third = len(spent) // 3
    applied = sum(n for n, _, _ in spent)
    return {
        "events": applied,
        "batches": len(spent),
        "transaction_us": per_event(spent, lambda t, f: t),
        "fold_us": per_event(spent, lambda t, f: f),
        "write_us": per_event(spent, lambda t, f: t - f),
        "write_first_third_us": per_event(spent[:third], lambda t, f: t - f),
        "write_last_third_us": per_event(spent[-third:], lambda t, f: t - f),
        "rows_per_event": rows / applied,
        "server_us": 0.0,
    }


READS: dict[str, Callable[[CounterStore], Awaitable[Any]]] = {
    "totals now": lambda s: s.totals(None),
    "report as of 2020-03-07": lambda s: s.totals(date(2020, 3, 7)),
    "report as of 2020-02-15": lambda s: s.totals(date(2020, 2, 15)),
    "/metrics": lambda s: s.counters(None, {}, ("metric", "district", "grp", "category")),
    "dashboard per day": lambda s: s.counters(date(2020, 3, 7), {"metric": SERVICES}, ("day",)),
    "dashboard by district": lambda s: s.counters(
        date(2020, 3, 7), {"metric": SERVICES}, ("district",)
    ),
    "one district by day": lambda s: s.counters(
        None, {"district": "haizhu", "metric": "calls_received"}, ("day", "grp")
    ),
    "one point since": lambda s: s.counters(
        date(2020, 3, 7), {"point": "point:p17"}, ("metric",), since=date(2020, 2, 1)
    ),
    "every row": lambda s: s.counters(None, {}, KEY_COLUMNS),
}


async def reads(db: Database, rounds: int = 3) -> dict[str, tuple[float, float, str]]:
    """Per read: median CPU ms, median wall ms, and a fingerprint of its answer."""
    store = CounterStore(db)
    out = {}
    for name, read in READS.items():
        cpu, wall = [], []
        for _ in range(rounds):
            c, w = time.process_time(), time.perf_counter()
            answer = await read(store)
            cpu.append((time.process_time() - c) * 1e3)
            wall.append((time.perf_counter() - w) * 1e3)
        digest = hashlib.sha256(orjson.dumps(answer, option=orjson.OPT_SORT_KEYS)).hexdigest()
        out[name] = (statistics.median(cpu), statistics.median(wall), digest[:12])
    return out


def show(
    where: str, result: dict[str, float], answers: dict[str, tuple[float, float, str]]
) -> None:
    print(f"\n{where}: {int(result['events']):,} events in {int(result['batches'])} batches")
    print(f"  transaction (fold + write + commit)  {result['transaction_us']:6.2f} µs/event CPU")
    print(f"  fold alone                           {result['fold_us']:6.2f} µs/event CPU")
    print(f"  write (the difference)               {result['write_us']:6.2f} µs/event CPU")
    print(
        f"  write, first / last third            {result['write_first_third_us']:6.2f} / "
        f"{result['write_last_third_us']:.2f} µs/event CPU"
    )
    if result["server_us"]:
        print(f"  server backends                      {result['server_us']:6.2f} µs/event CPU")
    print(f"  counter rows written                 {result['rows_per_event']:6.2f} per event")
    for name, (cpu, wall, digest) in answers.items():
        print(f"  read {name:28} {cpu:7.1f} ms CPU {wall:7.1f} ms wall  answer {digest}")


async def on_sqlite(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reporting.db"
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            result = await write(db, args.events, args.batch)
            answers = await reads(db)
        finally:
            await db.dispose()
        show("SQLite", result, answers)
        print(f"  file {path.stat().st_size / 2**20:.1f} MiB")


async def on_postgres(args: argparse.Namespace) -> None:
    server = args.postgres.replace("postgresql+asyncpg://", "postgresql://")
    name = f"kapok_counters_bench_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        db = Database(f"{args.postgres.rsplit('/', 1)[0]}/{name}")
        try:
            await CounterStore(db).setup()
            before = await backends_cpu(server, name)
            result = await write(db, args.events, args.batch)
            after = await backends_cpu(server, name)
            spent = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
            result["server_us"] = spent * 1e6 / result["events"]
            # Statistics, as autovacuum gathers them within a minute of a bulk write: without
            # them the planner takes a filter on a dimension for one row (1.4 s, not 55 ms).
            async with db.write() as conn:
                await conn.execute(text("ANALYZE"))
            answers = await reads(db)
            async with db.read() as conn:
                size = await conn.execute(text("SELECT pg_database_size(current_database())"))
                mib = size.scalar_one() / 2**20
        finally:
            await db.dispose()
        show("PostgreSQL", result, answers)
        print(f"  database {mib:.1f} MiB")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", help="e.g. postgresql+asyncpg://postgres@127.0.0.1/test")
    parser.add_argument("--no-sqlite", action="store_true")
    args = parser.parse_args(argv)
    if not args.no_sqlite:
        asyncio.run(on_sqlite(args))
    if args.postgres:
        asyncio.run(on_postgres(args))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
