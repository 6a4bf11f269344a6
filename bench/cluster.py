"""The 2020 scenario on `kapok up --cluster 3` ÷ on `kapok up` (one node), in the same run.

    .venv/bin/python -m bench.cluster [--scale 0.1] [--seed 2020] [--json PATH]

Each configuration is started as users start it (a fresh data directory, SQLite, free ports),
the scenario played flat out through the first instance of each service (`kapok simulate`'s
client), and timed from the first request until reporting's report as of 2020-03-07 shows
the final figures. The cluster pays for three replicas of every message (each write
acknowledged once two of three nodes have it) and for twice the processes: its ratio is
that price on this machine. CPU seconds: the `kapok up` and everything it runs. Measure on
a quiet machine only; on a shared one the ratio says little.
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

from bench.procs import family_cpu_seconds
from kapok.cluster import SECOND_INSTANCE_OFFSET
from kapok.simulate.client import Client
from kapok.simulate.guangzhou2020 import Scenario, wait_for_report
from shared.bus.embedded import port_is_free

SERVICES = ("reporting", "hotline", "aid", "donation", "people")


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def pair_of_ports() -> int:
    """A free port whose second instance's port (+10) is free too."""
    from bench.load import free_port

    while True:
        port = free_port()
        if port_is_free(port + SECOND_INSTANCE_OFFSET):
            return port


async def until_answering(ports: list[int], within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as http:
        for port in ports:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/openapi.json")).is_success:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"port {port} did not answer in {within_s:g}s: see up.log")
                await asyncio.sleep(0.2)


async def one(work: Path, scale: Decimal, seed: int, nodes: int) -> dict[str, Any]:
    """The scenario on ``nodes`` nats-servers (1: `kapok up` as it is)."""
    data_dir = work / f"data-{nodes}"
    ports = {name: pair_of_ports() for name in SERVICES}
    argv = [sys.executable, "-m", "kapok.cli", "up", "--data-dir", str(data_dir)]
    argv += ["--nats-port", "0", *(f"--{n}-port={p}" for n, p in ports.items())]
    if nodes > 1:
        argv += ["--cluster", str(nodes)]
    log = work / f"up-{nodes}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPOK_")}
    say(f"kapok up{' --cluster ' + str(nodes) if nodes > 1 else ''} (log: {log})")
    up = await asyncio.create_subprocess_exec(
        *argv, stdout=log.open("wb"), stderr=asyncio.subprocess.STDOUT, env=env
    )
    try:
        answering = list(ports.values())
        if nodes > 1:
            answering += [p + SECOND_INSTANCE_OFFSET for p in ports.values()]
        await until_answering(answering)
        os.environ["KAPOK_DATA_DIR"] = str(data_dir)  # the client signs in with its token
        before = family_cpu_seconds(up.pid)
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        scenario = Scenario(seed, scale)
        started = time.perf_counter()
        async with Client.open(urls, f"bench-cluster-{nodes}-{seed}-{scale}") as client:
            await scenario.play(client)
        played = time.perf_counter() - started
        ok, figures = await wait_for_report(urls["reporting"], scenario.target, within_s=600)
        shown = time.perf_counter() - started
        cpu = family_cpu_seconds(up.pid) - before
    finally:
        up.send_signal(signal.SIGINT)
        await asyncio.wait_for(up.wait(), 90)
    if not ok:
        wrong = {k: (figures.get(k), v) for k, v in scenario.target.items() if figures.get(k) != v}
        raise RuntimeError(f"{nodes} node(s): reporting never showed the figures: {wrong}")
    say(f"{nodes} node(s): {client.requests:,} requests, report final after {shown:.1f}s")
    return {"requests": client.requests, "played_s": played, "wall_s": shown, "cpu_s": cpu}


async def measure(scale: Decimal, seed: int, work: Path) -> dict[str, Any]:
    single = await one(work, scale, seed, 1)
    cluster = await one(work, scale, seed, 3)
    return {
        "scale": str(scale),
        "seed": seed,
        "cores": os.cpu_count(),
        "load_before": os.getloadavg()[0],
        "one_node": single,
        "cluster_3": cluster,
        "wall_ratio": cluster["wall_s"] / single["wall_s"],
        "cpu_ratio": cluster["cpu_s"] / single["cpu_s"] if single["cpu_s"] else None,
    }


def report(result: dict[str, Any]) -> None:
    print(
        f"guangzhou-2020 on --cluster 3 ÷ one node: scale {result['scale']}, seed "
        f"{result['seed']}, {result['cores']} cores, load average {result['load_before']:.1f} "
        "before (noisy unless near 0)"
    )
    for label, key in (("one node", "one_node"), ("--cluster 3", "cluster_3")):
        r = result[key]
        print(
            f"  {label:<12} {r['requests']:>9,} requests  all answered {r['played_s']:>7.1f}s"
            f"  report final {r['wall_s']:>7.1f}s  CPU {r['cpu_s']:>7.1f}s"
        )
    cpu = result["cpu_ratio"]
    print(
        f"  ratio        wall {result['wall_ratio']:.2f}"
        + (f", CPU {cpu:.2f}" if cpu is not None else "")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", default="0.1")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kapok-bench-cluster-") as tmp:
        result = asyncio.run(measure(Decimal(args.scale), args.seed, Path(tmp)))
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
