"""What a process and its descendants have used so far, read from Linux's ``/proc``: CPU
seconds and memory, for the benchmarks that run Kapok's processes beside themselves. A
service's worker processes (the reporting fold's, `shared/offload.py`) count as the service's."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int | str = "self") -> float:
    """User plus system CPU time of a process, all its threads (0 if unreadable): what the
    machine's cores paid, whatever else ran beside."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def status_kib(field: str, pid: int | str = "self") -> int:
    """A ``/proc/<pid>/status`` memory field (VmRSS, VmHWM) in KiB; 0 if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def family(pid: int | str) -> list[str]:
    """A process and its descendants, alive now."""
    children: dict[str, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = stat.read_text().rsplit(")", 1)[1].split()[1]
        except (OSError, IndexError):
            continue
        children.setdefault(parent, []).append(stat.parent.name)
    found, todo = [], [str(pid)]
    while todo:
        found.append(todo.pop())
        todo.extend(children.get(found[-1], []))
    return found


def family_cpu_seconds(pid: int | str) -> float:
    """`cpu_seconds` of a process and its descendants alive now (an ended one no longer
    counts: read it before and after, while they run)."""
    return sum(cpu_seconds(member) for member in family(pid))


def family_kib(field: str, pid: int | str) -> int:
    """`status_kib` added up over a process and its descendants (for VmHWM an upper bound of
    their peak together)."""
    return sum(status_kib(field, member) for member in family(pid))
