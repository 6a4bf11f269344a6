"""The printed table (Markdown, to paste into the README) and the JSON file."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Row:
    key: str  # e.g. "relay"; ratios compare rows of the same sync
    measure: str
    sync: str
    events: int = 0
    seconds: float | None = None  # None: not measured (see note)
    versus: str | None = None  # key of the raw row this one is compared with
    target: float | None = None
    note: str = ""
    ratio: float | None = field(default=None, init=False)

    @property
    def rate(self) -> float | None:
        return self.events / self.seconds if self.seconds else None

    @property
    def met(self) -> bool | None:
        if self.target is None or self.ratio is None:
            return None
        return self.ratio >= self.target


def compute_ratios(rows: list[Row]) -> None:
    rates = {(r.key, r.sync): r.rate for r in rows}
    for row in rows:
        base = rates.get((row.versus or row.key, row.sync))
        if row.rate is not None and base:
            row.ratio = row.rate / base


def load() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def machine(
    nats_version: str, postgres_version: str | None, load_at_start: float | None
) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "nats_server": nats_version,
        "nats_py": version("nats-py"),
        "faststream": version("faststream"),
        "sqlalchemy": version("sqlalchemy"),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres_version,
        "load_at_start": load_at_start,
        "load_at_end": load(),
    }


def _ratio(value: float | None) -> str:
    # Rounded down, so that 0.498 against a target of 0.50 does not print as 0.50.
    return "–" if value is None else f"{math.floor(value * 100) / 100:.2f}"


def _cell(value: float | None, fmt: str) -> str:
    return "–" if value is None else format(value, fmt)


def table(
    info: dict[str, Any], events: int, body_bytes: float, rows: list[Row], repeat: int
) -> str:
    header = [
        f"Kapok benchmark, {info['date']}",
        f"machine: {info['cpus']} CPUs ({info['cpu']}), {info['os']}, Python {info['python']}; "
        f"load average {info['load_at_start']} at start, {info['load_at_end']} at end",
        f"nats-server {info['nats_server']} (own, loopback, file storage), nats-py "
        f"{info['nats_py']}, FastStream {info['faststream']}, SQLAlchemy {info['sqlalchemy']}, "
        f"SQLite {info['sqlite']}, PostgreSQL {info['postgresql'] or 'not measured'}",
        f"events: {events:,} hotline CallReceived, mean body {body_bytes:.0f} bytes; "
        f"store: SQLite (WAL, synchronous=FULL); garbage collector tuned as in the services; "
        f"warmed up, " + ("one timed run each" if repeat == 1 else f"best of {repeat} timed runs"),
        "",
    ]
    columns = ["measure", "nats sync", "events/s", "vs raw", "target", "met?"]
    lines = []
    for row in rows:
        target = "–" if row.target is None else f"≥ {row.target:.2f}"
        met = {None: "–", True: "yes", False: "NO"}[row.met]
        rate = _cell(row.rate, ",.0f") if row.seconds is not None else row.note
        lines.append(
            [row.measure, row.sync, rate, _ratio(row.ratio), target, met],
        )
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(columns)]
    right = {2, 3, 4}

    def render(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(parts) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in right else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([*header, render(columns), rule, *map(render, lines)])


def durability(rows: list[Row]) -> str:
    rates = {(r.key, r.sync): r.rate for r in rows}
    parts = []
    for key, label in (("raw_publish", "raw publish"), ("relay", "relay")):
        always, default = rates.get((key, "always")), rates.get((key, "default"))
        if always and default:
            parts.append(f"{label} {always / default:.2f}")
    return "sync always / default: " + ", ".join(parts) if parts else ""


def write_json(
    path: Path, info: dict[str, Any], events: int, body_bytes: float, rows: list[Row]
) -> None:
    data = {
        "machine": info,
        "events": events,
        "mean_body_bytes": round(body_bytes, 1),
        "rows": [
            asdict(r) | {"events_per_s": r.rate and round(r.rate, 1), "met": r.met} for r in rows
        ],
    }
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    print(f"numbers written to {path}", file=sys.stderr)
