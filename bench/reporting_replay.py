"""The audit replay as a process of its own, so that its peak memory is its own.

    python -m bench.reporting_replay OUT.json     (NATS and naming from the KAPOK_* settings)

Runs `services.reporting.audit.replay` (what `kapok audit replay` runs) over HOTLINE, AID and
DONATION with the service's naming, and writes to OUT.json: seconds, events, whether every
chain held, the report's figures, the resident memory sampled along the way (events read so
far, KiB, this process) and the peak (VmHWM) of this process plus those of the processes
the replay started for stretches of the streams, whose CPU time is counted too.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from bench.procs import cpu_seconds, status_kib
from services.reporting.audit import replay
from shared.bus.naming import Naming
from shared.collector import tune_gc
from shared.runtime import connect
from shared.settings import PRODUCERS, Settings


async def run() -> dict[str, object]:
    # Imported here, not at the top: a replay's helper processes start by importing this
    # module again (spawn), and the HTTP side (FastAPI) would add half a second to each, which
    # `kapok audit replay` (kapok/cli.py imports lazily) does not pay.
    from services.reporting.entrypoints.http import today

    settings = Settings()
    nc = await connect(settings, "audit")
    tune_gc()  # as `kapok audit replay` does
    samples: list[tuple[int, int]] = []
    finished: dict[str, int] = {}

    def progress(source: str, done: int, total: int) -> None:
        if done >= total:
            finished[source] = total
        read = sum(finished.values()) + (0 if done >= total else done)
        samples.append((read, status_kib("VmRSS")))

    cpu = cpu_seconds()
    try:
        result = await replay(
            nc, Naming.of(settings), PRODUCERS, progress=progress, nats_url=settings.nats_url
        )
    finally:
        await nc.close()
    # The stretches folded in other processes (services/reporting/slices.py) count too: their
    # CPU is added, and their peaks to this process's (an upper bound of the sum at any time).
    return {
        "seconds": result.seconds,
        "processes": 1 + len(result.elsewhere),
        "cpu_seconds": cpu_seconds() - cpu + sum(c for c, _ in result.elsewhere),
        "peak_kib_elsewhere": sum(p for _, p in result.elsewhere),
        "events": sum(s.events for s in result.sources.values()),
        "folded": sum(s.folded for s in result.sources.values()),
        "broken": result.broken,
        "figures": result.report(None, today())["figures"],
        "rss_samples": samples,
        "peak_kib": status_kib("VmHWM") + sum(p for _, p in result.elsewhere),
    }


def main() -> int:
    Path(sys.argv[1]).write_bytes(orjson.dumps(asyncio.run(run())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
