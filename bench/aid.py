"""Aid benchmark: delivery recording rate, and referral-to-request latency under load.

    .venv/bin/python -m bench.aid [--referrals-per-s 500] [--seconds 10] [--batches 10]
                                  [--clients 32] [--database-url postgresql+asyncpg://...]
                                  [--nats-sync always|default]

In one run, on its own nats-server and fresh SQLite files (or the given database for aid), it
starts `kapok serve aid` as its own process and plays the hotline in this one (a hotline
event store and its outbox relay), then measures:

- referral-to-request latency: ``--referrals-per-s`` ReferredToAid for ``--seconds``, appended
  to the hotline store in groups every 10 ms; for each, the time from the hotline's commit to
  its AidRequested arriving on the AID stream's subject (hotline relay → aid consumer, which
  commits the request with its checkpoint → aid relay): p50, p99, max, and the rate sustained;
- delivery recording: ``--batches`` × 5,000 deliveries through ``POST /deliveries:batch``
  (deliveries/s stored, and published on the AID stream), then single
  ``POST /requests/{id}/deliveries`` with ``--clients`` concurrent clients (each on requests
  of its own, so none conflicts): requests/s, p50 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson

from bench import load
from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.contracts.envelope import Context, NewEvent
from shared.contracts.hotline import ReferredToAid
from shared.contracts.types import Place
from shared.eventstore import Append, Database, EventStore
from shared.relay import OutboxRelay
from shared.settings import Settings

PLACE = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
ITEMS = [
    {"kind": "medicine", "quantity": "2", "unit": "box", "value_yuan": "56.50"},
    {"kind": "vegetables", "quantity": "1.5", "unit": "kg"},
]


async def referral_latency(
    hotline: EventStore, nc: Any, naming: Naming, per_s: int, seconds: float
) -> tuple[dict[str, float], list[str]]:
    committed: dict[str, float] = {}
    arrived: dict[str, float] = {}
    done = asyncio.Event()
    total = int(per_s * seconds)

    async def on_request(msg: Any) -> None:
        referral = orjson.loads(msg.data)["data"]["referral"]
        if referral is not None:
            arrived.setdefault(referral, time.perf_counter())
            if len(arrived) >= total:
                done.set()

    sub = await nc.subscribe(naming.event_subject("aid", "AidRequested"), cb=on_request)
    relay = OutboxRelay(hotline, nc, naming)
    relay_task = asyncio.create_task(relay.run())
    when = datetime.now(UTC) - timedelta(hours=1)
    tick, sent, began = 0.01, 0, time.perf_counter()
    try:
        while sent < total:
            due = min(total, int((time.perf_counter() - began) * per_s) + 1)
            group = []
            for n in range(sent, due):
                referred = ReferredToAid(
                    referral=f"referral:b{n}",
                    call=f"call:b{n}",
                    point="point:bench",
                    person=f"person:b{n}",
                    group=("elderly_alone", "disabled", "low_income", "child")[n % 4],
                    place=PLACE,
                    needs=("medicine", "food"),
                    urgency="today",
                )
                group.append(Append(referred.referral, 0, [NewEvent(referred, when)]))
            if group:
                await hotline.append_all(group, Context(actor="worker:bench"))
                now = time.perf_counter()
                committed.update({a.stream_id: now for a in group})
                sent = due
            await asyncio.sleep(tick)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - began
    finally:
        relay_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay_task
        await sub.unsubscribe()
    latencies = sorted(arrived[r] - committed[r] for r in committed if r in arrived)
    return {
        "referrals": total,
        "arrived": len(arrived),
        "per_s": len(arrived) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * load.percentile(latencies, 0.99),
        "max_ms": 1000 * latencies[-1],
    }, sorted(arrived)


async def batch_deliveries(
    base: str, requests: list[str], batches: int, nc: Any, stream: str
) -> dict[str, float]:
    when = datetime.now(UTC) - timedelta(minutes=30)
    bodies = [
        orjson.dumps(
            {
                "items": [
                    {
                        "request": requests[(b * 5000 + i) % len(requests)],
                        "items": ITEMS,
                        "persons_served": 1 + i % 3,
                        "delivered_at": when.isoformat(),
                    }
                    for i in range(5000)
                ]
            }
        )
        for b in range(batches)
    ]
    js = nc.jetstream()
    already = (await js.stream_info(stream)).state.messages
    async with httpx.AsyncClient(base_url=base, timeout=300, headers=load.AUTH) as client:
        began = time.perf_counter()
        await load.post_batches(client, "/deliveries:batch", bodies, "d")
        stored = time.perf_counter() - began
    await load.until_published(js, stream, already + batches * 5000)
    published = time.perf_counter() - began
    count = batches * 5000
    return {
        "deliveries": count,
        "stored_per_s": count / stored,
        "published_per_s": count / published,
    }


async def single_deliveries(
    base: str, requests: list[str], clients: int, seconds: float
) -> dict[str, float]:
    """``clients`` keep-alive connections on a minimal HTTP/1.1 client (httpx would measure
    itself); client k delivers to requests k, k + clients, … so no two race on a request."""
    host, port = base.removeprefix("http://").split(":")
    when = datetime.now(UTC) - timedelta(minutes=5)
    body = orjson.dumps({"items": ITEMS, "persons_served": 1, "delivered_at": when.isoformat()})
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(k: int) -> None:
        mine = requests[k::clients]

        def request(n: int) -> bytes:
            return load.post(host, f"/requests/{mine[n % len(mine)]}/deliveries", body)

        await load.keep_alive(host, int(port), stop, request, load.created, latencies)

    began = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return load.rates(latencies, time.perf_counter() - began)


async def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="kapok-bench-aid-"))
    with EmbeddedNats(work / "nats", port=0, sync=args.nats_sync) as server:
        env = load.service_env(server.url, work, args.database_url)
        port = load.free_port()
        aid = await load.serve("aid", port, env, work / "aid.log")
        base = f"http://127.0.0.1:{port}"
        naming = Naming()
        hotline_db = Database(Settings(data_dir=work / "data").database_url_for("hotline"))
        hotline = EventStore(hotline_db, "hotline")
        await hotline.setup()
        nc = await nats.connect(server.url)
        try:
            await load.wait_for(base)
            latency, referrals = await referral_latency(
                hotline, nc, naming, args.referrals_per_s, args.seconds
            )
            from services.aid.domain import request_id_for_referral

            requests = [request_id_for_referral(r) for r in referrals]
            batched = await batch_deliveries(base, requests, args.batches, nc, naming.stream("aid"))
            single = await single_deliveries(base, requests, args.clients, args.seconds)
        finally:
            await nc.close()
            await hotline_db.dispose()
            await load.stop(aid)
    report(args, latency, batched, single)


def report(
    args: argparse.Namespace,
    latency: dict[str, float],
    batched: dict[str, float],
    single: dict[str, float],
) -> None:
    load.header("aid", args)
    rows = [
        (f"referrals offered at {args.referrals_per_s}/s, opened/s", latency["per_s"], ",.0f"),
        ("  referrals opened as requests", latency["arrived"], ",.0f"),
        ("referral → request on AID, p50 ms", latency["p50_ms"], ".1f"),
        ("referral → request on AID, p99 ms", latency["p99_ms"], ".1f"),
        ("referral → request on AID, max ms", latency["max_ms"], ".1f"),
        ("batch deliveries stored/s", batched["stored_per_s"], ",.0f"),
        ("batch deliveries published/s", batched["published_per_s"], ",.0f"),
        (f"POST …/deliveries, {args.clients} clients, req/s", single["per_s"], ",.0f"),
        (f"POST …/deliveries, {args.clients} clients, p50 ms", single["p50_ms"], ".1f"),
        (f"POST …/deliveries, {args.clients} clients, p99 ms", single["p99_ms"], ".1f"),
    ]
    load.rows(rows, 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.aid", description=__doc__.split("\n")[0])
    parser.add_argument("--referrals-per-s", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="aid's database (default SQLite)")
    load.add_nats_sync(parser)
    asyncio.run(bench(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
