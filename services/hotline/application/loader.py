"""The toolkit's loader, plus the hotline's point cache and the open-shift lookup a decision
needs.

Points are cached in memory: every call and shift reads one, and a point changes at most
twice in its life (opened, closed), so re-reading its events per call would be most of a
call's work. A cached point can only be stale if another replica closed it meanwhile, and the
commit re-checks closure in the store under the store's lock (`guards.open_points`), so the
rule "a closed point takes no calls" holds regardless. A decision that changes a point
(closing it) loads it fresh, and a committed change drops it from the cache (`committed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar, cast

from services.hotline.adapters import tables
from services.hotline.domain import HotlinePoint
from shared.domain.aggregate import Aggregate
from shared.eventstore import EventStore
from shared.service.application import Loader

A = TypeVar("A", bound=Aggregate)


class HotlineLoader(Loader):
    def __init__(self, store: EventStore) -> None:
        super().__init__(store)
        self._points: dict[str, HotlinePoint] = {}

    async def one(self, kind: type[A], id: str, *, fresh: bool = False) -> A:
        """``fresh``: read the store, for a decision that will change it (never the cached
        object, which concurrent decisions share read-only)."""
        if fresh or kind is not HotlinePoint:
            return await super().one(kind, id)
        if (point := self._points.get(id)) is None:
            point = await super().one(HotlinePoint, id)
            self._keep(point)
        return cast(A, point)

    async def many(self, kind: type[A], ids: Iterable[str]) -> dict[str, A]:
        if kind is not HotlinePoint:
            return await super().many(kind, ids)
        wanted = set(ids)
        found = {i: self._points[i] for i in wanted if i in self._points}
        for point in (await super().many(HotlinePoint, wanted - found.keys())).values():
            self._keep(point)
            found[point.id] = point
        return cast(dict[str, A], found)

    def committed(self, aggregates: Iterable[Aggregate]) -> None:
        for aggregate in aggregates:
            self._points.pop(aggregate.id, None)

    def _keep(self, point: HotlinePoint) -> None:
        if point.exists:
            self._points[point.id] = point

    async def last_record_at(self, point: str) -> tuple[tuple[str, datetime] | None, int]:
        """The record made at ``point`` dated last, and the last position read
        (`tables.last_record_at`)."""
        async with self.store.db.read() as conn:
            return await tables.last_record_at(conn, point)

    async def open_shifts(self, workers: list[str]) -> dict[str, str]:
        async with self.store.db.read() as conn:
            return await tables.open_shifts_of(conn, workers)
