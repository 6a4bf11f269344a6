"""Hotline benchmark: batch import rate and single POST /calls throughput and latency.

    .venv/bin/python -m bench.hotline [--batches 20] [--seconds 10] [--clients 32]
                                      [--database-url postgresql+asyncpg://...]
                                      [--nats-sync always|default]

In one run, on its own nats-server (JetStream with nats-server's default fsync, which is
Kapok's default: README, "Durability"; ``--nats-sync always`` fsyncs after every write and
then measures that server's write rate more than Kapok) and a fresh SQLite file (or the given
database), it starts
`kapok serve hotline` as its own process, and a bare FastAPI endpoint (POST that reads the
body and answers 201) as another, then measures over real HTTP:

- batch import: ``--batches`` × 5,000 calls through ``POST /calls:batch``, one request at a
  time; calls/s stored (all responses in) and published (all on the HOTLINE stream);
- single ``POST /calls`` with ``--clients`` concurrent clients for ``--seconds``: requests/s,
  p50 and p99 latency, beside the bare endpoint measured the same way.

Targets (issue 3): batch import ≥ 20,000 calls/s; single POST ≥ 0.4 × the bare endpoint.
The clients run in this process and share the machine's cores with the servers: the ratio to
the bare endpoint is the number to read, not the absolute rate.
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
from fastapi import FastAPI, Request, Response

from bench import load
from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming

PLACE = {
    "district": "haizhu",
    "street": "南洲街",
    "station": "station:nanzhou",
    "organisation": "org:haizhu-sw",
}


def bare_app() -> FastAPI:
    """The same framework with nothing behind it: the ceiling for one POST."""
    app = FastAPI()

    @app.post("/calls")
    async def calls(request: Request) -> Response:
        await request.body()
        return Response(b'{"ok":true}', status_code=201, media_type="application/json")

    return app


def run_bare(port: int) -> None:
    """Served as the service serves (`process.http_config`: the same log level and access log,
    ``KAPOK_ACCESS_LOG``), so the ratio compares what is behind the endpoint, not logging."""
    import uvicorn

    from shared.service.process import http_config

    uvicorn.Server(http_config(bare_app(), "127.0.0.1", port)).run()


def call(point: str, i: int, when: datetime) -> dict[str, Any]:
    return {
        "point": point,
        "category": ("psychological_counselling", "emotional_support", "epidemic_consultation")[
            i % 3
        ],
        "group": ("elderly_alone", "disabled", "low_income", "child", "general")[i % 5],
        "channel": "phone",
        "received_at": when.isoformat(),
    }


async def batch_import(
    base: str, point: str, batches: int, nc: Any, stream: str, already: int
) -> dict[str, float]:
    when = datetime.now(UTC) - timedelta(hours=1)
    bodies = [
        orjson.dumps({"items": [call(point, b * 5000 + i, when) for i in range(5000)]})
        for b in range(batches)
    ]
    js = nc.jetstream()
    async with httpx.AsyncClient(base_url=base, timeout=120, headers=load.AUTH) as client:
        began = time.perf_counter()
        await load.post_batches(client, "/calls:batch", bodies, "b")
        stored = time.perf_counter() - began
    await load.until_published(js, stream, already + batches * 5000)
    published = time.perf_counter() - began
    calls = batches * 5000
    return {"calls": calls, "stored_per_s": calls / stored, "published_per_s": calls / published}


async def hammer(base: str, body: bytes, clients: int, seconds: float) -> dict[str, float]:
    """``clients`` keep-alive connections, each sending the next POST when the last was
    answered. A minimal HTTP/1.1 client on asyncio streams: httpx costs more CPU per request
    than the bare endpoint does, and would measure itself instead of the servers."""
    host, port = base.removeprefix("http://").split(":")
    request = load.post(host, "/calls", body)
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def one_client() -> None:
        await load.keep_alive(host, int(port), stop, lambda _: request, load.created, latencies)

    began = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)))
    return load.rates(latencies, time.perf_counter() - began)


async def bench(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="kapok-bench-hotline-"))
    with EmbeddedNats(work / "nats", port=0, sync=args.nats_sync) as server:
        env = load.service_env(server.url, work, args.database_url)
        hotline_port, bare_port = load.free_port(), load.free_port()
        hotline = await load.serve("hotline", hotline_port, env, work / "hotline.log")
        bare = await load.start(
            "-m", "bench.hotline", "--bare", str(bare_port), env=env, log=work / "bare.log"
        )
        base, bare_base = f"http://127.0.0.1:{hotline_port}", f"http://127.0.0.1:{bare_port}"
        nc = await nats.connect(server.url)
        try:
            await load.wait_for(base)
            await load.wait_for(bare_base, "/docs")
            async with httpx.AsyncClient(base_url=base, headers=load.AUTH) as client:
                opened = datetime.now(UTC) - timedelta(days=1)
                response = await client.post(
                    "/points", json={"place": PLACE, "opened_at": opened.isoformat()}
                )
                point = response.json()["point"]
            stream = Naming().stream("hotline")
            imported = await batch_import(base, point, args.batches, nc, stream, already=1)
            body = orjson.dumps(call(point, 0, datetime.now(UTC) - timedelta(minutes=5)))
            bare_result = await load.with_cpu(
                bare.pid, hammer(bare_base, body, args.clients, args.seconds)
            )
            single = await load.with_cpu(
                hotline.pid, hammer(base, body, args.clients, args.seconds)
            )
        finally:
            await nc.close()
            for process in (hotline, bare):
                await load.stop(process)
    report(args, imported, single, bare_result)


def report(
    args: argparse.Namespace,
    imported: dict[str, float],
    single: dict[str, float],
    bare: dict[str, float],
) -> None:
    load.header("hotline", args)
    print(f"{'measure':<44} {'value':>12}  target")
    ok = "ok" if imported["stored_per_s"] >= 20_000 else "BELOW"
    print(f"{'batch import, calls stored/s':<44} {imported['stored_per_s']:>12,.0f}  ≥ 20,000 {ok}")
    print(f"{'batch import, calls published/s':<44} {imported['published_per_s']:>12,.0f}")
    print(f"{'  (calls imported)':<44} {imported['calls']:>12,.0f}")
    for name, result in (("bare FastAPI POST", bare), ("POST /calls", single)):
        label = f"{name}, {args.clients} clients"
        print(f"{label + ', requests/s':<44} {result['per_s']:>12,.0f}")
        print(f"{label + ', p50 ms':<44} {result['p50_ms']:>12.1f}")
        print(f"{label + ', p99 ms':<44} {result['p99_ms']:>12.1f}")
    for name, result in (("bare FastAPI POST", bare), ("POST /calls", single)):
        label = f"{name}, server CPU µs/request"
        print(f"{label:<44} {1e6 * result['cpu_s'] / result['requests']:>12.0f}")
    ratio = single["per_s"] / bare["per_s"]
    ok = "ok" if ratio >= 0.4 else "BELOW"
    print(f"{'POST /calls ÷ bare endpoint':<44} {ratio:>12.2f}  ≥ 0.40 {ok}")
    # The same ratio from the servers' CPU per request: what the machine's other load and the
    # clients sharing its cores move least.
    by_cpu = (bare["cpu_s"] / bare["requests"]) / (single["cpu_s"] / single["requests"])
    print(f"{'  same, by server CPU per request':<44} {by_cpu:>12.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.hotline", description=__doc__)
    parser.add_argument("--batches", type=int, default=20, help="batches of 5,000 calls")
    parser.add_argument("--seconds", type=float, default=10.0, help="per single-POST run")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    load.add_nats_sync(parser)
    parser.add_argument("--bare", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare is not None:
        run_bare(args.bare)
        return 0
    asyncio.run(bench(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
