"""The 2020 Guangzhou scenario at full scale: wall time and events/s (issue 7).

    .venv/bin/python -m bench.simulate [--scale 1] [--seed 2020] [--json PATH]

It runs `kapok up` as users do (embedded nats-server, the four services as their own
processes, SQLite under a fresh data directory, free ports), plays
`kapok simulate guangzhou-2020` flat out through the services' HTTP APIs, and times it from
the first request to the moment reporting's report as of 2020-03-07 shows the final figures
(what the dashboard shows). It prints the requests, the events on the bus, events/s, and
the CPU seconds each process used: on 2 cores, the process with the most CPU is the one to
make faster. Target: the full scenario in under 60 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats

from bench.load import free_port
from bench.procs import cpu_seconds, family_cpu_seconds, family_kib, status_kib
from kapok.identities import sign_in_options
from kapok.simulate.client import Client
from kapok.simulate.guangzhou2020 import Scenario, wait_for_report
from kapok.up import running
from shared.bus.auth import AUDITOR

TARGET_S = 60.0
SERVICES = ("reporting", "hotline", "aid", "donation", "people")
STREAMS = ("HOTLINE", "AID", "DONATION", "PEOPLE")


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def _cpu(name: str, pid: int) -> float:
    """A service's CPU with its worker processes'; `kapok up`'s alone (its descendants are
    the services, counted each on its own)."""
    return cpu_seconds(pid) if name == "up" else family_cpu_seconds(pid)


def processes(data_dir: Path) -> dict[str, int]:
    """The pids of the `kapok up` on ``data_dir`` and of what it runs, as its up.json says."""
    up = running(data_dir)
    if not up:
        return {}
    services = up.get("services")
    assert isinstance(services, dict)
    return {"up": int(str(up["up"])), "nats-server": int(str(up["nats"])), **services}


async def until_up(data_dir: Path, ports: dict[str, int], within_s: float = 90) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as http:
        for name, port in ports.items():
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/openapi.json")).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer in {within_s:g}s: see up.log")
                await asyncio.sleep(0.2)
    while True:  # until up.json lists every service: it is written as each one starts
        if len(processes(data_dir)) == len(ports) + 2:
            return
        await asyncio.sleep(0.1)


async def events_on_bus(nats_port: int, data_dir: Path) -> dict[str, int]:
    auditor = sign_in_options(data_dir, AUDITOR)  # `kapok up` refuses anonymous connections
    nc = await nats.connect(f"nats://127.0.0.1:{nats_port}", **auditor)
    try:
        js = nc.jetstream()
        return {s: (await js.stream_info(s)).state.messages for s in STREAMS}
    finally:
        await nc.close()


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    data_dir = work / "data"
    ports = {name: free_port() for name in SERVICES}
    nats_port = free_port()
    argv = [sys.executable, "-m", "kapok.cli", "up", "--data-dir", str(data_dir)]
    argv += ["--nats-port", str(nats_port)]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    log = work / "up.log"
    env = {**os.environ}
    env.pop("KAPOK_DATABASE_URL", None)
    say(f"kapok up (log: {log})")
    spawned = time.perf_counter()
    up = await asyncio.create_subprocess_exec(
        *argv, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT, env=env
    )
    try:
        await until_up(data_dir, ports)
        start_up = time.perf_counter() - spawned
        os.environ["KAPOK_DATA_DIR"] = str(data_dir)  # the client signs in with its token
        pids = processes(data_dir)
        before = {name: _cpu(name, pid) for name, pid in pids.items()}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        scale = Decimal(args.scale)
        scenario = Scenario(args.seed, scale)
        say(f"playing guangzhou-2020 at scale {scale}, seed {args.seed}")
        started = time.perf_counter()
        async with Client.open(urls, f"bench-{args.seed}-{scale}") as client:
            await scenario.play(client)
        played = time.perf_counter() - started
        say(f"{client.requests:,} requests answered in {played:.1f}s; waiting for reporting")
        ok, figures = await wait_for_report(urls["reporting"], scenario.target, within_s=600)
        shown = time.perf_counter() - started
        after = {name: _cpu(name, pid) for name, pid in pids.items()}
        peaks = {
            name: family_kib("VmHWM", pid) / 1024 for name, pid in pids.items() if name != "up"
        }
        peaks["simulator"] = status_kib("VmHWM") / 1024
        bench_cpu = sum(os.times()[:2])
        events = await events_on_bus(nats_port, data_dir)
    finally:
        up.send_signal(signal.SIGINT)
        await asyncio.wait_for(up.wait(), 60)
    if not ok:
        wrong = {k: (figures.get(k), v) for k, v in scenario.target.items() if figures.get(k) != v}
        raise RuntimeError(f"reporting never showed the scenario's figures: {wrong}")
    total = sum(events.values())
    return {
        "scale": str(scale),
        "seed": args.seed,
        "cores": os.cpu_count(),
        "requests": client.requests,
        "start_up_s": start_up,
        "played_s": played,
        "wall_s": shown,
        "events": events,
        "events_per_s": total / shown,
        "cpu_s": {name: after[name] - before[name] for name in pids} | {"simulator": bench_cpu},
        "peak_rss_mb": peaks,
        "target_s": TARGET_S,
    }


def report(result: dict[str, Any]) -> None:
    total = sum(result["events"].values())
    print(
        f"guangzhou-2020 benchmark: scale {result['scale']}, seed {result['seed']}, "
        f"{result['cores']} cores, kapok up defaults (SQLite, embedded nats-server)"
    )
    print(f"{'requests (HTTP)':<34} {result['requests']:>12,}")
    for stream, n in result["events"].items():
        print(f"{'events on ' + stream:<34} {n:>12,}")
    print(f"{'kapok up answering (not counted)':<34} {result['start_up_s']:>11.1f}s")
    print(f"{'all requests answered':<34} {result['played_s']:>11.1f}s")
    print(f"{'report shows the final figures':<34} {result['wall_s']:>11.1f}s")
    print(f"{'events/s (all streams, end to end)':<34} {total / result['wall_s']:>12,.0f}")
    print("CPU seconds per process (2 cores: at most 2 × wall), peak resident memory:")
    for name, seconds in sorted(result["cpu_s"].items(), key=lambda kv: -kv[1]):
        peak = result["peak_rss_mb"].get(name)
        memory = f"{peak:>8,.0f} MB" if peak is not None else ""
        print(f"  {name:<32} {seconds:>11.1f}s {memory}")
    if Decimal(result["scale"]) == 1:
        met = "met" if result["wall_s"] < result["target_s"] else "missed"
        print(f"target: the full scenario under {result['target_s']:g}s: {met}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.simulate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", default="1")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kapok-bench-sim-") as tmp:
        result = asyncio.run(measure(args, Path(tmp)))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
