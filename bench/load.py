"""What the service benchmarks (bench/hotline.py, bench/aid.py, bench/donation.py) share: a
service started as a process of its own on its own nats-server, HTTP load on keep-alive
connections, and latency percentiles.

The timed regions stay in each benchmark where they were: these helpers only do the steps
inside them (post batches, poll a stream, one keep-alive client's loop).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

from bench.procs import cpu_seconds


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def service_env(nats_url: str, work: Path, database_url: str | None) -> dict[str, str]:
    """The environment of a `kapok serve` process: the bench's nats-server, data under
    ``work``, plain subject root and stream names, and ``database_url`` if given (else the
    service's SQLite file)."""
    env = {
        **os.environ,
        "KAPOK_NATS_URL": nats_url,
        "KAPOK_DATA_DIR": str(work / "data"),
        "KAPOK_SUBJECT_ROOT": "kapok",
        "KAPOK_STREAM_PREFIX": "",
    }
    env.pop("KAPOK_DATABASE_URL", None)
    if database_url:
        env["KAPOK_DATABASE_URL"] = database_url
    return env


async def start(*argv: str, env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *argv, env=env, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT
    )


# The administrator's token every served process of a bench knows (registered by `serve` in
# the bench's token bucket, as `kapok token create` would): sign-in is measured, not skipped.
TOKEN = "kapok_benchadmin_" + "b" * 43
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def serve(
    service: str, port: int, env: dict[str, str], log: Path
) -> asyncio.subprocess.Process:
    """`kapok serve <service> --port <port>` as a process of its own, its output in ``log``;
    `TOKEN` signs in to it."""
    if env.get("KAPOK_AUTH", "1") != "0":
        from kapok.tokens import register

        await register(env, TOKEN, "bench")
    return await start(
        "-m", "kapok.cli", "serve", service, "--port", str(port), env=env, log=log
    )  # fmt: skip


async def stop(process: asyncio.subprocess.Process) -> None:
    process.send_signal(2)  # SIGINT: the service's clean shutdown
    await asyncio.wait_for(process.wait(), 30)


async def wait_for(base: str, path: str = "/openapi.json", seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient() as client:
        while True:
            try:
                await client.get(base + path)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)


async def post_batches(client: httpx.AsyncClient, path: str, bodies: list[bytes], key: str) -> None:
    """Each body in turn, as JSON with the Idempotency-Key ``{key}{n}``; each must be 201."""
    for n, body in enumerate(bodies):
        response = await client.post(
            path,
            content=body,
            headers={"content-type": "application/json", "Idempotency-Key": f"{key}{n}"},
        )
        assert response.status_code == 201, response.text[:300]


async def until_published(js: Any, stream: str, expected: int) -> None:
    while True:  # polling the stream is the measurement here, not a wait for an event
        if (await js.stream_info(stream)).state.messages >= expected:
            break
        await asyncio.sleep(0.02)


def post(host: str, path: str, body: bytes) -> bytes:
    """A JSON POST as HTTP/1.1 bytes, for ``keep_alive``."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def keep_alive(
    host: str,
    port: int,
    stop: float,
    request: Callable[[int], bytes],
    answered: Callable[[bytes, bytes], None],
    latencies: list[float],
) -> None:
    """One client on a keep-alive connection: until ``stop`` (perf_counter), sends
    ``request(n)`` (n = 0, 1, …) once the last was answered, appends its latency, then hands
    the response's head and body to ``answered``. A minimal HTTP/1.1 client on asyncio
    streams: httpx costs more CPU per request than a bare endpoint does, and would measure
    itself instead of the servers."""
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    try:
        while (now := time.perf_counter()) < stop:
            writer.write(request(n))
            n += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - now)
            answered(head, answer)
    finally:
        writer.close()


def created(head: bytes, answer: bytes) -> None:
    """``answered`` for ``keep_alive`` when every request must be answered 201."""
    assert head.startswith(b"HTTP/1.1 201"), (head + answer)[:300]


async def with_cpu(pid: int, run: Awaitable[dict[str, float]]) -> dict[str, float]:
    """``run``'s result plus ``cpu_s``: the CPU process ``pid`` used meanwhile."""
    before = cpu_seconds(pid)
    result = await run
    return {**result, "cpu_s": cpu_seconds(pid) - before}


def rates(latencies: list[float], elapsed: float) -> dict[str, float]:
    """Requests, requests/s, p50 and p99 ms of one run; sorts ``latencies``."""
    latencies.sort()
    return {
        "requests": len(latencies),
        "per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * percentile(latencies, 0.99),
    }


def add_nats_sync(parser: argparse.ArgumentParser) -> None:
    """``--nats-sync``: Kapok's default fsync unless told otherwise."""
    parser.add_argument(
        "--nats-sync",
        choices=["always", "default"],
        default="default",
        help="JetStream fsync: nats-server's default, every 2 minutes (Kapok's default), or "
        "after every write",
    )


def header(name: str, args: argparse.Namespace) -> None:
    """The first line of a service benchmark's report: cores, database, nats-server fsync
    (and which ``--nats-sync`` chose it), the services' HTTP access log."""
    from shared.service.process import ACCESS_LOG, access_log

    database = "PostgreSQL" if args.database_url else "SQLite"
    sync = "after every write" if args.nats_sync == "always" else "every 2 minutes"
    logged = "on" if access_log() else "off"
    print(
        f"{name} benchmark: {os.cpu_count()} cores, {database}, nats-server fsync {sync} "
        f"(--nats-sync {args.nats_sync}), HTTP access log {logged} ({ACCESS_LOG})"
    )


def rows(rows: list[tuple[str, float, str]], width: int) -> None:
    """The report's rows: each label left in ``width``, its value formatted by its spec."""
    for label, value, spec in rows:
        print(f"{label:<{width}} {format(value, spec):>12}")
