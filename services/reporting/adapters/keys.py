"""A counter `Key` as the compact row key (metric_id, day, dims_id), ids cached per process.

The writer hands out the ids itself (the next after the largest) and remembers them, so a
batch's rows are made with two dictionary look-ups each; a metric or a combination of
dimensions never seen before is inserted in the batch's own transaction.

A rolled-back batch takes its new ids with it, and the cache must not keep them: so each
batch starts by reading the largest id of both tables (one short statement) and, when they
are not the ones the cache ends with, reads both tables again. A writer in another process
(there is none, but a restored backup or a second service by mistake) is caught the same way.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.adapters.tables import dims, metrics
from services.reporting.domain.fold import DIMENSIONS, Increments
from shared.eventstore.database import sqlite_driver

Row = tuple[int, Any, int, int]  # metric_id, day (as bound), dims_id, value


@dataclass(slots=True)
class KeyIds:
    """The ids of one database's metrics and dimension combinations."""

    metrics: dict[str, int] = field(default_factory=dict)
    dims: dict[tuple[str, ...], int] = field(default_factory=dict)
    tops: tuple[int, int] = (-1, -1)  # the largest id of each the cache holds; -1: unread

    async def rows(
        self,
        conn: AsyncConnection,
        increments: Increments,
        day: Callable[[date], Any] | None = None,
    ) -> list[Row]:
        """The batch's non-zero increments as rows, adding what the tables lack; ``day``
        turns a date into what the statement binds (a batch has a day or two)."""
        await self._check(conn)
        days = {d: d if day is None else day(d) for d in {key[1] for key in increments}}
        m, d = self.metrics, self.dims
        try:
            return [(m[k[0]], days[k[1]], d[k[2:]], v) for k, v in increments.items() if v]
        except KeyError:
            pass
        written = [key for key, value in increments.items() if value]
        new_metrics = _new(m, (key[0] for key in written), self.tops[0])
        new_dims = _new(d, (key[2:] for key in written), self.tops[1])
        if new_metrics:
            rows = [{"id": id_, "name": name} for name, id_ in new_metrics.items()]
            await conn.execute(metrics.insert(), rows)
        if new_dims:
            rows = [
                {"id": id_, **dict(zip(DIMENSIONS, combination, strict=True))}
                for combination, id_ in new_dims.items()
            ]
            await conn.execute(dims.insert(), rows)
        m.update(new_metrics)
        d.update(new_dims)
        self.tops = (self.tops[0] + len(new_metrics), self.tops[1] + len(new_dims))
        return [(m[k[0]], days[k[1]], d[k[2:]], v) for k, v in increments.items() if v]

    async def _check(self, conn: AsyncConnection) -> None:
        driver = sqlite_driver(conn)
        if driver is not None:
            (tops,) = await driver.fetch(_LARGEST)
        else:
            tops = (await conn.exec_driver_sql(_LARGEST)).one()
        if tuple(tops) == self.tops:
            return
        found = await conn.execute(select(metrics.c.id, metrics.c.name))
        self.metrics = {name: id_ for id_, name in found}
        found = await conn.execute(select(dims.c.id, *(dims.c[name] for name in DIMENSIONS)))
        self.dims = {tuple(row[1:]): row[0] for row in found}
        self.tops = (int(tops[0]), int(tops[1]))


# Plain SQL, on SQLite straight to the driver: it runs once a batch.
_LARGEST = (
    f"SELECT (SELECT coalesce(max(id), 0) FROM {metrics.name}), "
    f"(SELECT coalesce(max(id), 0) FROM {dims.name})"
)


def _new(known: Mapping[Any, int], values: Iterable[Any], top: int) -> dict[Any, int]:
    """The values ``known`` lacks, with the ids after ``top``."""
    fresh = [value for value in dict.fromkeys(values) if value not in known]
    return dict(zip(fresh, range(top + 1, top + 1 + len(fresh)), strict=True))


# One cache per engine (a database in this process): tests open many databases in turn.
_CACHES: weakref.WeakKeyDictionary[Engine, KeyIds] = weakref.WeakKeyDictionary()


def key_ids(conn: AsyncConnection) -> KeyIds:
    engine = conn.sync_engine
    cache = _CACHES.get(engine)
    if cache is None:
        cache = _CACHES[engine] = KeyIds()
    return cache
