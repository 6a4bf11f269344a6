"""Reporting benchmark (issue 6): on one stream of a million events, in one run, the raw pull
limits, the live fold, the audit replay, their peak memory, and the latency from a command's
HTTP response to its counter in ``/api/counters``.

    .venv/bin/python -m bench.reporting [--events 1000000] [--rounds 1] [--seconds 20]
                                        [--rate 500] [--json PATH] [--quick]
                                        [--postgres postgresql+asyncpg://…/test]

On its own nats-server (nats-server's default fsync unless ``--nats-sync always``):

1. ``--events`` events of the three sources (the mix of `bench.reporting_data`: mostly
   calls, follow-ups and shifts, some aid and donation), sealed and chained as their stores
   seal them, published straight onto HOTLINE, AID and DONATION. The hotline's share also
   goes into a hotline event store, so that the real hotline service can later record calls
   on top of that history.
2. Each round: the raw pull with acks (the foundation's `bench.pull.raw_pull`) and without
   (`bench.pull.raw_pull_no_ack`) over the three streams; the live fold: `kapok serve reporting` as
   its own process, fresh database, timed from its durables' creation until every stream is
   acknowledged to its end (read from the server's consumer info, which costs the process
   nothing), its resident memory sampled along the way (its fold worker's CPU and memory,
   `shared/offload.py`, added to its own); the audit replay
   (`services.reporting.audit.replay`, what `kapok audit replay` runs) as its own process,
   which folds stretches of the longest stream in processes of its own, one per core (their
   CPU and peak memory are added to its own). The replay's figures must equal the live
   service's `/api/report`. A target is met when every round meets it.
3. Latency: `kapok serve hotline` on that history beside the caught-up reporting process;
   ``POST /calls`` at a steady ``--rate`` for ``--seconds`` (open loop: each request leaves
   at its scheduled time whatever the others are doing), while one client polls
   ``/api/counters`` (the new point's ``calls_received`` for today) every ``--poll-ms``. A
   call is visible at the first poll answer counting it: the fold applies in stream order, so
   the count ``k`` means the ``k`` first calls by position (read off the HOTLINE stream).

Targets: live fold ≥ 0.5 × raw pull with acks; replay ≥ 0.8 × raw pull without acks; p99
latency ≤ 100 ms; memory flat in the number of events (here: the resident size at the end
within 10% of the size at a quarter of the events). The machine's cores are shared with
nats-server, the services and this client: read the ratios, measured in the same round.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError

from bench import load, pull
from bench.procs import family_cpu_seconds, family_kib
from bench.reporting_data import OwnStore, fill
from bench.run import Postgres
from services.reporting.entrypoints.http import today
from shared import signing
from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.runtime import provision
from shared.settings import PRODUCERS, Settings

DURABLE = "reporting"  # the live service's consumer name
TARGETS = {"fold": 0.5, "replay": 0.8, "p99_ms": 100.0, "growth": 0.10}


def say(text: str) -> None:
    print(f"bench.reporting: {text}", file=sys.stderr, flush=True)


@dataclass
class Round:
    raw_ack: float = 0.0  # events/s
    raw_no_ack: float = 0.0
    fold: float = 0.0
    replay: float = 0.0
    fold_peak_kib: int = 0
    fold_cpu_us: float = 0.0  # CPU per event of the live service while it caught up
    replay_cpu_us: float = 0.0
    replay_peak_kib: int = 0  # all its processes' peaks added up
    replay_processes: int = 1
    fold_rss: list[tuple[int, int]] = field(default_factory=list)  # (events applied, KiB)
    replay_rss: list[tuple[int, int]] = field(default_factory=list)
    replay_equals_live: bool = False

    @property
    def fold_ratio(self) -> float:
        return self.fold / self.raw_ack

    @property
    def replay_ratio(self) -> float:
        return self.replay / self.raw_no_ack


def growth(samples: list[tuple[int, int]], total: int) -> tuple[int, int, float]:
    """Resident KiB at a quarter of the events and at the end, and the relative growth."""
    if not samples:
        return 0, 0, 0.0
    quarter = next((kib for n, kib in samples if n >= total // 4), samples[-1][1])
    end = samples[-1][1]
    return quarter, end, (end - quarter) / quarter if quarter else 0.0


# -- the raw limits ---------------------------------------------------------------------


async def raw_limits(nc: NATS, naming: Naming, counts: dict[str, int], tag: str) -> Round:
    r = Round()
    total = sum(counts.values())
    seconds = 0.0
    for source, n in counts.items():
        seconds += await pull.raw_pull(nc, naming.stream(source), f"raw_{tag}_{source}", n)
        await nc.jetstream().delete_consumer(naming.stream(source), f"raw_{tag}_{source}")
    r.raw_ack = total / seconds
    seconds = 0.0
    for source, n in counts.items():
        seconds += await pull.raw_pull_no_ack(nc, naming.stream(source), n)
    r.raw_no_ack = total / seconds
    say(f"raw pull: {r.raw_ack:,.0f}/s with acks, {r.raw_no_ack:,.0f}/s without")
    return r


# -- the live fold ----------------------------------------------------------------------


async def acked(nc: NATS, naming: Naming) -> int | None:
    """Events the live service's durables have acknowledged, all streams; None until all
    three durables exist."""
    js = nc.jetstream()
    done = 0
    for source in PRODUCERS:
        try:
            info = await js.consumer_info(naming.stream(source), DURABLE)
        except NotFoundError:
            return None
        done += int(info.ack_floor.stream_seq if info.ack_floor else 0)
    return done


async def live_fold(
    nc: NATS, naming: Naming, total: int, env: dict[str, str], work: Path, r: Round
) -> tuple[asyncio.subprocess.Process, str]:
    """Start `kapok serve reporting` on a fresh database; return it once caught up."""
    js = nc.jetstream()
    for source in PRODUCERS:  # a previous round's durable: this round starts from zero
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(naming.stream(source), DURABLE)
    port = load.free_port()
    process = await load.serve("reporting", port, env, work / "reporting.log")
    began = None
    while (done := await acked(nc, naming)) is None:
        if process.returncode is not None:
            raise RuntimeError(f"reporting exited: see {work / 'reporting.log'}")
        await asyncio.sleep(0.01)
    began = time.perf_counter()
    cpu = family_cpu_seconds(str(process.pid))
    next_sample = 0.0
    while done < total:
        if process.returncode is not None:
            raise RuntimeError(f"reporting exited: see {work / 'reporting.log'}")
        now = time.perf_counter()
        if now >= next_sample:
            r.fold_rss.append((done, family_kib("VmRSS", str(process.pid))))
            next_sample = now + 0.5
        await asyncio.sleep(0.02)
        done = await acked(nc, naming)  # type: ignore[assignment]
    r.fold = total / (time.perf_counter() - began)
    r.fold_cpu_us = (family_cpu_seconds(str(process.pid)) - cpu) / total * 1e6
    r.fold_rss.append((done, family_kib("VmRSS", str(process.pid))))
    r.fold_peak_kib = family_kib("VmHWM", str(process.pid))
    base = f"http://127.0.0.1:{port}"
    await load.wait_for(base, "/api/health")
    say(
        f"live fold: {r.fold:,.0f}/s ({r.fold_ratio:.2f} × raw), {r.fold_cpu_us:.1f} µs CPU "
        f"per event, peak {r.fold_peak_kib:,} KiB"
    )
    return process, base


async def check_live(base: str, figures: dict[str, Any]) -> tuple[bool, int]:
    """The live report equals the replay's; and no event was dead-lettered."""
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=load.AUTH) as client:
        live = (await client.get("/api/report")).json()["figures"]
        health = (await client.get("/api/health")).json()
    dead = sum(s["dead_letters"] for s in health["streams"].values())
    for name in sorted(set(live) | set(figures)):
        if live.get(name) != figures.get(name):
            say(f"DIFFERENT {name}: live {live.get(name)}, replay {figures.get(name)}")
    return live == figures, dead


# -- the audit replay -------------------------------------------------------------------


async def audit_replay(env: dict[str, str], work: Path, r: Round) -> dict[str, Any]:
    out = work / "replay.json"
    process = await load.start(
        "-m", "bench.reporting_replay", str(out), env=env, log=work / "replay.log"
    )  # fmt: skip
    if await process.wait() != 0:
        raise RuntimeError(f"replay failed: see {work / 'replay.log'}")
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    if result["broken"]:
        raise RuntimeError(f"replay found a broken chain: {result['broken']}")
    r.replay = result["events"] / result["seconds"]
    r.replay_peak_kib = result["peak_kib"]
    r.replay_cpu_us = result["cpu_seconds"] / result["events"] * 1e6
    r.replay_rss = [tuple(s) for s in result["rss_samples"]]  # type: ignore[misc]
    r.replay_processes = result["processes"]
    say(
        f"replay: {r.replay:,.0f}/s ({r.replay_ratio:.2f} × raw), {r.replay_cpu_us:.1f} µs CPU "
        f"per event, {r.replay_processes} process(es), peak {r.replay_peak_kib:,} KiB in all"
    )
    return result


# -- latency: HTTP response to /api/counters --------------------------------------------


@dataclass
class Latency:
    sent: int = 0
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    http_p99_ms: float = 0.0
    poll_ms: float = 0.0  # mean time of one /api/counters answer


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[bytes, bytes]:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return head, await reader.readexactly(length)


async def latency(
    nc: NATS, naming: Naming, hotline: str, reporting: str, args: argparse.Namespace
) -> Latency:
    async with httpx.AsyncClient(base_url=hotline, headers=load.AUTH) as client:
        opened = datetime.now(UTC) - timedelta(hours=1)
        place = {"district": "haizhu", "street": "南洲街", "station": "station:nanzhou",
                 "organisation": "org:haizhu-sw"}  # fmt: skip
        answer = await client.post(
            "/points", json={"place": place, "opened_at": opened.isoformat()}
        )
        assert answer.status_code == 201, answer.text
        point = answer.json()["point"]
    positions: dict[str, int] = {}  # call -> position on HOTLINE

    async def on_event(msg: Msg) -> None:
        body = orjson.loads(msg.data)
        if body["data"].get("point") == point:
            positions[body["data"]["call"]] = body["position"]

    sub = await nc.subscribe(naming.event_subject("hotline", "CallReceived"), cb=on_event)
    host, port = hotline.removeprefix("http://").split(":")
    r_host, r_port = reporting.removeprefix("http://").split(":")
    poll = (
        f"GET /api/counters?metric=calls_received&point={point}&since={today()} HTTP/1.1\r\n"
        f"Host: {r_host}\r\nAuthorization: Bearer {load.TOKEN}\r\n\r\n"
    ).encode()
    # First in, first out: every connection is used every few milliseconds, so none sits
    # idle past the server's keep-alive timeout (uvicorn's 5 s) and is closed under us.
    idle: deque[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = deque()
    answered: list[tuple[float, str, float]] = []  # (response time, call, HTTP latency)
    seen: list[tuple[float, int]] = []  # (poll answer time, count)
    total = int(args.rate * args.seconds)
    sending = True

    async def one(n: int) -> None:
        body = orjson.dumps(
            {"point": point, "category": "emotional_support", "group": "elderly_alone",
             "channel": "phone", "received_at": datetime.now(UTC).isoformat()}
        )  # fmt: skip
        request = (
            f"POST /calls HTTP/1.1\r\nHost: {host}:{port}\r\nIdempotency-Key: bench-{n}\r\n"
            f"Authorization: Bearer {load.TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        began = time.perf_counter()
        for attempt in range(2):
            conn = idle.popleft() if idle else await asyncio.open_connection(host, int(port))
            try:
                head, answer = await _exchange(*conn, request)
                break
            except (asyncio.IncompleteReadError, ConnectionError):
                # The server closed this connection first; the key makes the retry safe.
                conn[1].close()
                if attempt:
                    raise
        done = time.perf_counter()
        assert head.startswith(b"HTTP/1.1 201"), (head + answer)[:300]
        answered.append((done, orjson.loads(answer)["call"], done - began))
        idle.append(conn)

    async def poller() -> None:
        reader, writer = await asyncio.open_connection(r_host, int(r_port))
        spent = 0.0
        while sending or (seen[-1][1] if seen else 0) < total:
            began = time.perf_counter()
            _, answer = await _exchange(reader, writer, poll)
            now = time.perf_counter()
            spent += now - began
            rows = orjson.loads(answer)["counters"]
            seen.append((now, int(rows[0]["value"]) if rows else 0))
            if not sending and now > deadline:
                break
            await asyncio.sleep(args.poll_ms / 1000)
        writer.close()
        result.poll_ms = 1000 * spent / max(1, len(seen))

    result = Latency()
    deadline = float("inf")
    polling = asyncio.create_task(poller())
    tasks = []
    began = time.perf_counter()
    for n in range(total):
        delay = began + n / args.rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(n)))
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        polling.cancel()
        raise
    result.rate = total / (time.perf_counter() - began)
    sending = False
    deadline = time.perf_counter() + 30
    await polling
    await sub.unsubscribe()
    for _, writer in idle:
        writer.close()
    # Rank of each call among the run's calls in stream order: count k shows the k first.
    rank = {call: i + 1 for i, call in enumerate(sorted(positions, key=positions.__getitem__))}
    times = [t for t, _ in seen]
    counts = [c for _, c in seen]
    lags = []
    for responded, call, _ in answered:
        first = bisect.bisect_left(counts, rank[call])
        if first == len(counts):
            raise RuntimeError(f"{call} never became visible in /api/counters")
        lags.append(max(0.0, times[first] - responded))
    lags.sort()
    result.sent = total
    result.p50_ms = 1000 * statistics.median(lags)
    result.p99_ms = 1000 * load.percentile(lags, 0.99)
    result.max_ms = 1000 * lags[-1]
    result.http_p99_ms = 1000 * load.percentile(sorted(a[2] for a in answered), 0.99)
    say(f"latency: p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms at {result.rate:.0f}/s")
    return result


# -- the run ------------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kapok-bench-reporting-"))
    rounds: list[Round] = []
    processes: list[asyncio.subprocess.Process] = []
    databases: list[Postgres] = []  # the live fold's, one a round (--postgres)
    try:
        with EmbeddedNats(work / "nats", port=0, sync=args.nats_sync) as server:
            nc = await nats.connect(server.url)
            env = load.service_env(server.url, work, None)
            settings = Settings(nats_url=server.url, subject_root="kapok", stream_prefix="")
            naming = Naming.of(settings)
            try:
                await provision(nc, settings)
                (work / "data").mkdir()
                began = time.perf_counter()
                own = OwnStore(work / "data" / "hotline.db", "hotline")
                # Signed as the services sign, with the keys the services started here find
                # (<data dir>/signing): the live fold and the replay check every signature.
                keys = work / "data" / "signing"
                signers = {s: signing.signer(keys, s) for s in ("hotline", "aid", "donation")}
                env["KAPOK_SIGNING_DIR"] = str(keys)  # the replay's helpers read it there
                counts = await fill(nc, naming, args.events, own, signers=signers)
                seconds = time.perf_counter() - began
                say(f"{args.events:,} events published in {seconds:.0f} s: {counts}")
                total = sum(counts.values())
                replayed: dict[str, Any] = {}
                reporting: tuple[asyncio.subprocess.Process, str] | None = None
                for n in range(args.rounds):
                    r = await raw_limits(nc, naming, counts, str(n))
                    if reporting is not None:
                        await load.stop(reporting[0])
                        processes.remove(reporting[0])
                    data = work / f"round{n}"
                    data.mkdir()
                    database = f"sqlite+aiosqlite:///{data / 'reporting.db'}"
                    if args.postgres:
                        databases.append(Postgres(args.postgres))
                        await databases[-1].create()
                        database = databases[-1].url
                    round_env = {**env, "KAPOK_DATABASE_URL": database}
                    reporting = await live_fold(nc, naming, total, round_env, data, r)
                    processes.append(reporting[0])
                    replayed = await audit_replay(env, data, r)
                    r.replay_equals_live, dead = await check_live(reporting[1], replayed["figures"])
                    if dead or not r.replay_equals_live:
                        raise RuntimeError(f"live and replay differ ({dead} dead letters)")
                    rounds.append(r)
                assert reporting is not None
                hotline_port = load.free_port()
                hotline = await load.serve("hotline", hotline_port, env, work / "hotline.log")
                processes.append(hotline)
                base = f"http://127.0.0.1:{hotline_port}"
                await load.wait_for(base)
                lat = await latency(nc, naming, base, reporting[1], args)
                latencies = [lat]
            except BaseException:
                args.keep = True  # the services' logs say why
                raise
            finally:
                await nc.close()
                for process in processes:
                    if process.returncode is None:
                        await load.stop(process)
                for database in databases:
                    await database.drop()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"kept {work}")
    return report(args, total, rounds, latencies)


def _range(values: list[float], spec: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, spec) if len(values) == 1 else f"{format(lo, spec)}–{format(hi, spec)}"


def report(
    args: argparse.Namespace, total: int, rounds: list[Round], latencies: list[Latency]
) -> dict[str, Any]:
    load_avg = os.getloadavg()[0]
    print(
        f"reporting benchmark: {total:,} events (HOTLINE, AID, DONATION), {len(rounds)} round(s), "
        f"{os.cpu_count()} cores, load {load_avg:.1f}, nats-server fsync {args.nats_sync}, "
        f"live counters on {'PostgreSQL' if args.postgres else 'SQLite'}"
    )
    print(f"| {'measure':<46} | {'value':>15} | {'vs raw':>9} | {'target':>8} | met? |")
    print(f"|{'-' * 48}|{'-' * 17}|{'-' * 11}|{'-' * 10}|------|")
    met: dict[str, bool] = {}

    def row(
        label: str, value: str, ratio: str = "", target: str = "", ok: bool | None = None
    ) -> None:
        shown = "–" if ok is None else ("yes" if ok else "NO")
        print(f"| {label:<46} | {value:>15} | {ratio:>9} | {target:>8} | {shown:<4} |")

    row("raw pull, +ACK each (events/s)", _range([r.raw_ack for r in rounds], ",.0f"))
    row("raw pull, no acks (events/s)", _range([r.raw_no_ack for r in rounds], ",.0f"))
    met["fold"] = min(r.fold_ratio for r in rounds) >= TARGETS["fold"]
    row("live fold: kapok serve reporting (events/s)", _range([r.fold for r in rounds], ",.0f"),
        _range([r.fold_ratio for r in rounds], ".2f"), "≥ 0.50", met["fold"])  # fmt: skip
    met["replay"] = min(r.replay_ratio for r in rounds) >= TARGETS["replay"]
    replay_label = f"audit replay, {rounds[0].replay_processes} processes (events/s)"
    row(replay_label, _range([r.replay for r in rounds], ",.0f"),
        _range([r.replay_ratio for r in rounds], ".2f"), "≥ 0.80", met["replay"])  # fmt: skip
    for name, peak, series in (
        ("live fold", [r.fold_peak_kib for r in rounds], [r.fold_rss for r in rounds]),
        ("audit replay", [r.replay_peak_kib for r in rounds], [r.replay_rss for r in rounds]),
    ):
        row(f"{name}: peak RSS (MiB)", _range([p / 1024 for p in peak], ".0f"))
        grown = [growth(s, total) for s in series]
        flat = all(g[2] <= TARGETS["growth"] for g in grown)
        met[f"{name} memory"] = flat
        row(f"{name}: RSS at 1/4 → all events (MiB)",
            " / ".join(f"{q / 1024:.0f}→{e / 1024:.0f}" for q, e, _ in grown), "",
            "≤ +10%", flat)  # fmt: skip
    for lat in latencies:
        row(
            f"POST /calls at {lat.rate:.0f}/s, {lat.sent:,} calls: HTTP p99 (ms)",
            f"{lat.http_p99_ms:.1f}",
        )
        row("response → /api/counters, p50 (ms)", f"{lat.p50_ms:.1f}")
        met["latency"] = lat.p99_ms <= TARGETS["p99_ms"]
        row("response → /api/counters, p99 (ms)", f"{lat.p99_ms:.1f}", "", "≤ 100", met["latency"])
        row("  (max; one /api/counters answer, mean ms)", f"{lat.max_ms:.1f}; {lat.poll_ms:.1f}")
    print(
        f"replay's figures equal the live /api/report: {all(r.replay_equals_live for r in rounds)}"
    )
    return {
        "events": total,
        "rounds": [
            asdict(r) | {"fold_ratio": r.fold_ratio, "replay_ratio": r.replay_ratio} for r in rounds
        ],
        "latency": [asdict(lat) for lat in latencies],
        "met": met,
        "load": load_avg,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reporting",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--rounds", type=int, default=1, help="raw, fold and replay rounds")
    parser.add_argument("--seconds", type=float, default=20.0, help="of steady commands")
    parser.add_argument("--rate", type=float, default=500.0, help="commands per second")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="between /api/counters polls")
    parser.add_argument("--nats-sync", choices=["always", "default"], default="default")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="the live fold's counters in a fresh database a round on this PostgreSQL server "
        "(postgresql+asyncpg://…; default: a SQLite file)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--quick", action="store_true", help="smoke: 20,000 events, 2 s")
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.seconds = 20_000, 2.0
    numbers = asyncio.run(bench(args))
    if args.json:
        args.json.write_bytes(orjson.dumps(numbers, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
