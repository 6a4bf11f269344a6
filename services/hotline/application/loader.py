"""Aggregates rebuilt from the store, and the open-shift lookup a decision needs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from services.hotline.adapters import tables
from services.hotline.domain import Aggregate
from shared.eventstore import EventStore

A = TypeVar("A", bound=Aggregate)


class Loader:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    async def one(self, kind: type[A], id: str) -> A:
        """The aggregate, or an empty one (``exists`` false) if it has no events. A reference
        of another kind (``call:…`` where a point is asked for) is never folded: empty too."""
        if not kind.owns(id):
            return kind(id)
        return kind.rebuild(id, await self.store.load(id))

    async def many(self, kind: type[A], ids: Iterable[str]) -> dict[str, A]:
        wanted = sorted(set(ids))
        mine = [i for i in wanted if kind.owns(i)]
        histories = await self.store.load_many(mine) if mine else {}
        return {i: kind.rebuild(i, histories.get(i, [])) for i in wanted}

    async def open_shifts(self, workers: list[str]) -> dict[str, str]:
        async with self.store.db.read() as conn:
            return await tables.open_shifts_of(conn, workers)
