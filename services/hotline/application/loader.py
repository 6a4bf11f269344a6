"""Aggregates rebuilt from the store, and the open-shift lookup a decision needs.

Points are cached in memory: every call and shift reads one, and a point changes at most
twice in its life (opened, closed), so re-reading its events per call would be most of a
call's work. A cached point can only be stale if another replica closed it meanwhile, and the
commit re-checks closure in the store under the store's lock (`GroupCommit`), so the rule
"a closed point takes no calls" holds regardless. A decision that changes a point (closing
it) loads it fresh, and a committed change drops it from the cache (`forget`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar, cast

from services.hotline.adapters import tables
from services.hotline.domain import HotlinePoint
from shared.eventstore import EventStore
from shared.service.aggregate import Aggregate

A = TypeVar("A", bound=Aggregate)

CACHED: tuple[type[Aggregate], ...] = (HotlinePoint,)


class Loader:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._cache: dict[str, Aggregate] = {}

    async def one(self, kind: type[A], id: str, *, fresh: bool = False) -> A:
        """The aggregate, or an empty one (``exists`` false) if it has no events. A reference
        of another kind (``call:…`` where a point is asked for) is never folded: empty too.
        ``fresh``: read the store, for a decision that will change it (never the cached
        object, which concurrent decisions share read-only)."""
        if not kind.owns(id):
            return kind(id)
        if fresh:
            return kind.rebuild(id, await self.store.load(id))
        if id in self._cache:
            return cast(A, self._cache[id])
        aggregate = kind.rebuild(id, await self.store.load(id))
        self._keep(aggregate)
        return aggregate

    async def many(self, kind: type[A], ids: Iterable[str]) -> dict[str, A]:
        wanted = sorted(set(ids))
        found = {i: cast(A, self._cache[i]) for i in wanted if i in self._cache}
        missing = [i for i in wanted if i not in found and kind.owns(i)]
        histories = await self.store.load_many(missing) if missing else {}
        for i in wanted:
            if i not in found:
                found[i] = kind.rebuild(i, histories.get(i, [])) if kind.owns(i) else kind(i)
                self._keep(found[i])
        return found

    def forget(self, ids: Iterable[str]) -> None:
        for id in ids:
            self._cache.pop(id, None)

    def _keep(self, aggregate: Aggregate) -> None:
        if isinstance(aggregate, CACHED) and aggregate.exists:
            self._cache[aggregate.id] = aggregate

    async def open_shifts(self, workers: list[str]) -> dict[str, str]:
        async with self.store.db.read() as conn:
            return await tables.open_shifts_of(conn, workers)
