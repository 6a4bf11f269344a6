"""The scenario's calendar, places and proportions, and the arithmetic that spreads a total
over days, stations or amounts exactly: what the plan is made of, with no I/O."""

from __future__ import annotations

import functools
import itertools
import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

CST = timezone(timedelta(hours=8))  # Guangzhou: every time below is local
FIRST, LAST = date(2020, 1, 23), date(2020, 3, 7)
AID_FROM = date(2020, 1, 26)  # "since 26 January"
DAYS = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]
WEI_YI_DAY = date(2020, 2, 12)

DISTRICTS = [
    ("yuexiu", "北京街"),
    ("haizhu", "南洲街"),
    ("liwan", "华林街"),
    ("tianhe", "五山街"),
    ("baiyun", "京溪街"),
    ("huangpu", "大沙街"),
    ("panyu", "市桥街"),
    ("huadu", "新华街"),
    ("nansha", "南沙街"),
    ("conghua", "城郊街"),
    ("zengcheng", "仙村镇"),
]
CATEGORIES = (
    ("epidemic_consultation", 5),
    ("emotional_support", 3),
    ("psychological_counselling", 2),
    ("help_request", 1),
)
GROUPS = (("general", 5), ("elderly_alone", 3), ("disabled", 1), ("low_income", 2), ("child", 1))
VULNERABLE = (("elderly_alone", 4), ("disabled", 2), ("low_income", 3), ("child", 1))
FOLLOW_UP_CHANNELS = (("phone", 6), ("online", 2), ("home_visit", 1))
AID_ITEMS: list[tuple[str, str, list[str]]] = [
    # (need, item kind, unit) → what a delivery for that need carries
    ("medicine", "medicine", ["box"]),
    ("food", "vegetables", ["kg"]),
    ("masks", "masks", ["piece"]),
    ("escort_to_hospital", "escort", ["trip"]),
    ("relief", "relief_cash", ["payment"]),
]


@functools.cache
def at(day: date, hour: int, minute: int = 0) -> str:
    # Cached: a day has few distinct minutes, and 300,000 items ask for them.
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=CST).isoformat()


def weights(days: Sequence[date], rng: random.Random, start: date = FIRST) -> list[float]:
    """A ramp over the three weeks after the outbreak, weekends lighter, a little noise."""
    out = []
    for day in days:
        if day < start:
            out.append(0.0)
            continue
        ramp = min(1.0, 0.15 + 0.85 * (day - start).days / 18)
        weekend = 0.7 if day.weekday() >= 5 else 1.0
        out.append(ramp * weekend * rng.uniform(0.9, 1.1))
    return out


def spread(total: int, shares: Sequence[float]) -> list[int]:
    """``total`` split in proportion to ``shares``, exactly (largest remainder)."""
    whole = sum(shares)
    if total == 0 or whole == 0:
        return [0] * len(shares)
    raw = [total * s / whole for s in shares]
    out = [int(r) for r in raw]
    order = sorted(range(len(raw)), key=lambda i: (out[i] - raw[i], i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def spread_fen(total: Decimal, parts: int, rng: random.Random) -> list[Decimal]:
    """``total`` yuan in ``parts`` amounts of at least 0.01, summing exactly."""
    fen = int(total * 100)
    parts = max(1, min(parts, fen))
    cuts = sorted(rng.sample(range(1, fen), parts - 1)) if parts > 1 else []
    edges = [0, *cuts, fen]
    return [(Decimal(b - a) / 100).quantize(Decimal("0.01")) for a, b in itertools.pairwise(edges)]


@functools.cache
def _cumulative(table: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    return [k for k, _ in table], list(itertools.accumulate(w for _, w in table))


def pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    keys, cumulative = _cumulative(table)
    return rng.choices(keys, cum_weights=cumulative)[0]
