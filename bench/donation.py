"""Donation benchmark: goods receipt recording rate.

    .venv/bin/python -m bench.donation [--batches 10] [--campaigns 10] [--clients 32]
                                       [--seconds 10] [--database-url postgresql+asyncpg://...]
                                       [--nats-sync always|default]

In one run, on its own nats-server and a fresh SQLite file (or the given database), it
starts `kapok serve donation` as its own process, launches campaigns, then measures:

- batch receipts: ``--batches`` × 5,000 receipts through ``POST /receipts:batch``, spread
  over ``--campaigns`` campaigns (receipts/s stored, and published on the DONATION stream);
- single ``POST /campaigns/{id}/receipts`` with ``--clients`` concurrent clients, each on a
  campaign of its own: requests/s, p50 and p99;
- the same with every client on one campaign (a campaign is one stream, so receipts to it
  race on its version): requests/s and how many were refused with 409.
"""

from __future__ import annotations

import argparse
import asyncio
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

ITEMS = [
    {"kind": "meals", "quantity": "50", "unit": "meal", "value_yuan": "1250.00"},
    {"kind": "masks", "quantity": "200", "unit": "piece"},
]
DISTRICTS = ["yuexiu", "tianhe", "haizhu", "liwan"]


async def launch(client: httpx.AsyncClient, n: int, when: datetime) -> str:
    response = await client.post(
        "/campaigns",
        json={
            "campaign_kind": "charity",
            "organisation": "org:bench",
            "title": f"bench campaign {n}",
            "districts": DISTRICTS,
            "starts_on": when.date().isoformat(),
            "launched_at": when.isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["campaign"])


async def batch_receipts(
    client: httpx.AsyncClient, campaigns: list[str], batches: int, nc: Any, stream: str
) -> dict[str, float]:
    when = datetime.now(UTC) - timedelta(minutes=30)
    bodies = [
        orjson.dumps(
            {
                "items": [
                    {
                        "campaign": campaigns[i % len(campaigns)],
                        "items": ITEMS,
                        "donor_kind": "company",
                        "district": DISTRICTS[i % 4],
                        "received_at": when.isoformat(),
                    }
                    for i in range(5000)
                ]
            }
        )
        for _ in range(batches)
    ]
    js = nc.jetstream()
    already = (await js.stream_info(stream)).state.messages
    began = time.perf_counter()
    await load.post_batches(client, "/receipts:batch", bodies, "r")
    stored = time.perf_counter() - began
    await load.until_published(js, stream, already + batches * 5000)
    published = time.perf_counter() - began
    count = batches * 5000
    return {"receipts": count, "stored_per_s": count / stored, "published_per_s": count / published}


async def single_receipts(
    base: str, campaigns: list[str], clients: int, seconds: float
) -> dict[str, float]:
    """``clients`` keep-alive connections on a minimal HTTP/1.1 client (httpx would measure
    itself); client k posts to campaigns[k % len(campaigns)]."""
    host, port = base.removeprefix("http://").split(":")
    when = datetime.now(UTC) - timedelta(minutes=5)
    body = orjson.dumps(
        {"items": ITEMS, "donor_kind": "individual", "received_at": when.isoformat()}
    )
    latencies: list[float] = []
    refused = 0
    stop = time.perf_counter() + seconds

    def answered(head: bytes, answer: bytes) -> None:
        nonlocal refused
        if head.startswith(b"HTTP/1.1 409"):
            refused += 1
        else:
            load.created(head, answer)

    async def client(k: int) -> None:
        path = f"/campaigns/{campaigns[k % len(campaigns)]}/receipts"
        await load.keep_alive(
            host, int(port), stop, lambda _: load.post(host, path, body), answered, latencies
        )

    began = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return {**load.rates(latencies, time.perf_counter() - began), "refused": refused}


async def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="kapok-bench-donation-"))
    with EmbeddedNats(work / "nats", port=0, sync=args.nats_sync) as server:
        env = load.service_env(server.url, work, args.database_url)
        port = load.free_port()
        donation = await load.serve("donation", port, env, work / "donation.log")
        base = f"http://127.0.0.1:{port}"
        nc = await nats.connect(server.url)
        try:
            await load.wait_for(base)
            when = datetime.now(UTC) - timedelta(hours=1)
            async with httpx.AsyncClient(base_url=base, timeout=300, headers=load.AUTH) as client:
                batch_campaigns = [await launch(client, n, when) for n in range(args.campaigns)]
                own = [await launch(client, 1000 + n, when) for n in range(args.clients)]
                shared = [await launch(client, 9999, when)]
                batched = await batch_receipts(
                    client, batch_campaigns, args.batches, nc, Naming().stream("donation")
                )
            single = await single_receipts(base, own, args.clients, args.seconds)
            contended = await single_receipts(base, shared, args.clients, args.seconds)
        finally:
            await nc.close()
            await load.stop(donation)
    report(args, batched, single, contended)


def report(
    args: argparse.Namespace,
    batched: dict[str, float],
    single: dict[str, float],
    contended: dict[str, float],
) -> None:
    load.header("donation", args)
    n = args.clients
    rows = [
        (f"batch receipts stored/s ({args.campaigns} campaigns)", batched["stored_per_s"], ",.0f"),
        ("batch receipts published/s", batched["published_per_s"], ",.0f"),
        (f"POST …/receipts, {n} clients, own campaigns, req/s", single["per_s"], ",.0f"),
        (f"POST …/receipts, {n} clients, own campaigns, p50 ms", single["p50_ms"], ".1f"),
        (f"POST …/receipts, {n} clients, own campaigns, p99 ms", single["p99_ms"], ".1f"),
        (f"POST …/receipts, {n} clients, one campaign, req/s", contended["per_s"], ",.0f"),
        (f"POST …/receipts, {n} clients, one campaign, p99 ms", contended["p99_ms"], ".1f"),
        ("  of which refused 409 (concurrency conflict)", contended["refused"], ",.0f"),
    ]
    load.rows(rows, 56)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.donation", description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=None, help="donation's database (default SQLite)")
    load.add_nats_sync(parser)
    asyncio.run(bench(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
