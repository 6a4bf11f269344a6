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
import os
import sys
from pathlib import Path

import orjson

from services.reporting.audit import replay
from shared.bus.naming import Naming
from shared.runtime import connect, tune_gc
from shared.settings import PRODUCERS, Settings


def cpu_seconds(pid: str = "self") -> float:
    """User plus system CPU time of a process, all its threads, from ``/proc/<pid>/stat``
    (0 if unreadable): what the machine's cores paid, whatever else ran beside."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def status_kib(field: str, pid: str = "self") -> int:
    """A ``/proc/<pid>/status`` memory field (VmRSS, VmHWM) in KiB; 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def family(pid: str) -> list[str]:
    """A process and its descendants (the live service's fold worker, say), from ``/proc``."""
    children: dict[str, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        children.setdefault(parent, []).append(stat.parent.name)
    found, todo = [], [pid]
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found


def family_cpu_seconds(pid: str) -> float:
    """`cpu_seconds` of a process and its descendants: those that have ended do not count."""
    return sum(cpu_seconds(member) for member in family(pid))


def family_kib(field: str, pid: str) -> int:
    """`status_kib` added up over a process and its descendants (for VmHWM an upper bound
    of their peak together)."""
    return sum(status_kib(field, member) for member in family(pid))


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
