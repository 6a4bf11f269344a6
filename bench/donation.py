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
import os
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

from bench.hotline import free_port, start, wait_for
from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming

ITEMS = [
    {"kind": "meals", "quantity": "50", "unit": "meal", "value_yuan": "1250.00"},
    {"kind": "masks", "quantity": "200", "unit": "piece"},
]
DISTRICTS = ["yuexiu", "tianhe", "haizhu", "liwan"]


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


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
    for n, body in enumerate(bodies):
        response = await client.post(
            "/receipts:batch",
            content=body,
            headers={"content-type": "application/json", "Idempotency-Key": f"r{n}"},
        )
        assert response.status_code == 201, response.text[:300]
    stored = time.perf_counter() - began
    expected = already + batches * 5000
    while True:  # polling the stream is the measurement here, not a wait for an event
        if (await js.stream_info(stream)).state.messages >= expected:
            break
        await asyncio.sleep(0.02)
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

    async def one_client(k: int) -> None:
        nonlocal refused
        path = f"/campaigns/{campaigns[k % len(campaigns)]}/receipts"
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (now := time.perf_counter()) < stop:
                writer.write(
                    (
                        f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    ).encode()
                    + body
                )
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                answer = await reader.readexactly(length)
                latencies.append(time.perf_counter() - now)
                if head.startswith(b"HTTP/1.1 409"):
                    refused += 1
                else:
                    assert head.startswith(b"HTTP/1.1 201"), (head + answer)[:300]
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(one_client(k) for k in range(clients)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "requests": len(latencies),
        "per_s": len(latencies) / elapsed,
        "refused": refused,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


async def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="kapok-bench-donation-"))
    with EmbeddedNats(work / "nats", port=0, sync=args.nats_sync) as server:
        env = {
            **os.environ,
            "KAPOK_NATS_URL": server.url,
            "KAPOK_DATA_DIR": str(work / "data"),
            "KAPOK_SUBJECT_ROOT": "kapok",
            "KAPOK_STREAM_PREFIX": "",
        }
        env.pop("KAPOK_DATABASE_URL", None)
        if args.database_url:
            env["KAPOK_DATABASE_URL"] = args.database_url
        port = free_port()
        donation = await start(
            "-m", "kapok.cli", "serve", "donation", "--port", str(port),
            env=env, log=work / "donation.log",
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        nc = await nats.connect(server.url)
        try:
            await wait_for(base)
            when = datetime.now(UTC) - timedelta(hours=1)
            async with httpx.AsyncClient(base_url=base, timeout=300) as client:
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
            donation.send_signal(2)  # SIGINT: the service's clean shutdown
            await asyncio.wait_for(donation.wait(), 30)
    report(args, batched, single, contended)


def report(
    args: argparse.Namespace,
    batched: dict[str, float],
    single: dict[str, float],
    contended: dict[str, float],
) -> None:
    database = "PostgreSQL" if args.database_url else "SQLite"
    sync = "after every write" if args.nats_sync == "always" else "every 2 minutes"
    print(f"donation benchmark: {os.cpu_count()} cores, {database}, nats-server fsync {sync}")
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
    for label, value, spec in rows:
        print(f"{label:<56} {format(value, spec):>12}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.donation", description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=10)
    parser.add_argument("--campaigns", type=int, default=10)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--database-url", default=None, help="donation's database (default SQLite)")
    parser.add_argument("--nats-sync", choices=["always", "default"], default="always")
    asyncio.run(bench(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
