"""Reporting's own costs, without the bus: decoding plus the pure fold, and the live write
path (fold a batch, one executemany of counter upserts, commit) on SQLite.

    .venv/bin/python -m bench.reporting [--events 200000] [--batch 1000]

The figures to hold against the foundation's raw pull (about 66,000/s here): the live path
must stay well above 0.5 x raw pull for the consumer not to be the bottleneck.
Not yet here (issue 6): the live fold through NATS, the replay rate, memory, and latency.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from services.reporting.adapters.counters import CounterStore, apply_batch
from services.reporting.domain.fold import Fold
from shared.contracts import GENESIS, REGISTRY, Event, uuid7
from shared.contracts.aid import AidDelivered
from shared.contracts.donation import FundsReceived
from shared.contracts.envelope import seal
from shared.contracts.hotline import CallReceived
from shared.contracts.types import AidItem, Place
from shared.eventstore.database import Database

CST = timezone(timedelta(hours=8))
DISTRICTS = ("yuexiu", "haizhu", "liwan", "tianhe", "baiyun", "huangpu", "panyu")
GROUPS = ("elderly_alone", "disabled", "low_income", "child", "general")
CATEGORIES = ("psychological_counselling", "emotional_support", "epidemic_consultation")


def _event(i: int) -> tuple[str, Event]:
    district = DISTRICTS[i % len(DISTRICTS)]
    place = Place(
        district=district,  # type: ignore[arg-type]
        street=f"{district}-street-{i % 5}",
        station=f"station:{district}-{i % 20}",
        organisation=f"org:{district}",
    )
    group = GROUPS[i % len(GROUPS)]
    if i % 10 == 9:
        return "aid", AidDelivered(
            request=f"request:{i}",
            delivery=f"delivery:{i}",
            person=f"person:{i}",
            group=group,  # type: ignore[arg-type]
            place=place,
            items=(AidItem(kind="medicine", quantity=Decimal(2), unit="box"),),
            persons_served=1 + i % 3,
        )
    if i % 10 == 8:
        return "donation", FundsReceived(
            campaign="campaign:warm",
            campaign_kind="charity",
            organisation="org:gz-charity",
            receipt=f"funds:{i}",
            donor_kind="individual",
            amount_yuan=Decimal(i % 1000 + 1) / 100,
        )
    return "hotline", CallReceived(
        call=f"call:{i}",
        point=f"point:{district}-{i % 20}",
        place=place,
        category=CATEGORIES[i % 3],  # type: ignore[arg-type]
        group=group,  # type: ignore[arg-type]
        channel="phone",
    )


def events(count: int) -> list[bytes]:
    """``count`` canonical, chained event bodies over 60 business days."""
    start = datetime(2020, 1, 26, 9, tzinfo=CST)
    heads = {"hotline": GENESIS, "aid": GENESIS, "donation": GENESIS}
    positions = dict.fromkeys(heads, 0)
    out = []
    for i in range(count):
        source, data = _event(i)
        positions[source] += 1
        body: dict[str, Any] = {
            "event_id": str(uuid7()),
            "type": type(data).type_name(),
            "schema_version": 1,
            "source": source,
            "stream_id": f"{source}-{i}",
            "version": 1,
            "position": positions[source],
            "occurred_at": (start + timedelta(minutes=i * 86_400 // count)).isoformat(),
            "recorded_at": start.isoformat(),
            "correlation_id": str(uuid7()),
            "causation_id": None,
            "actor": "system",
            "prev_hash": heads[source],
            "data": data.model_dump(mode="json"),
        }
        out.append(seal(body))
        heads[source] = body["hash"]
    return out


async def measure(count: int, batch: int) -> list[tuple[str, float]]:
    raw = events(count)
    rows: list[tuple[str, float]] = []

    started = time.perf_counter()
    decoded = [REGISTRY.decode(r) for r in raw]
    rows.append(("decode", count / (time.perf_counter() - started)))

    started = time.perf_counter()
    fold = Fold()
    fold.apply_all(decoded)
    rows.append(("fold (in memory)", count / (time.perf_counter() - started)))

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'reporting.db'}")
        await CounterStore(db).setup()
        started = time.perf_counter()
        for first in range(0, count, batch):
            async with db.write() as conn:
                await apply_batch(conn, decoded[first : first + batch])
        rows.append(
            (f"fold + upsert, {batch}/txn (SQLite)", count / (time.perf_counter() - started))
        )
        started = time.perf_counter()
        await CounterStore(db).totals(None)
        rows.append(("report query (ms)", (time.perf_counter() - started) * 1000))
        await db.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.reporting")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    for name, value in asyncio.run(measure(args.events, args.batch)):
        unit = "" if name.endswith("(ms)") else " events/s"
        print(f"{name:<40} {value:>12,.1f}{unit}")


if __name__ == "__main__":
    main()
