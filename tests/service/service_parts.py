"""A toy service on the toolkit, so the toolkit's stories need no real service: a tally that
is opened and counted up to ten. Its events live in a registry of their own, never on the
bus's (the contracts tests walk that one)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.envelope import Context, Event, NewEvent
from shared.contracts.registry import EventRegistry
from shared.contracts.types import Persons, Ref
from shared.domain.aggregate import Aggregate
from shared.domain.errors import RuleBroken
from shared.eventstore import Database, EventStore
from shared.service.application import CommandService, Decision, Handler, Loader
from shared.service.commands import Command, Happened
from shared.service.idempotency import idempotency_table

REGISTRY = EventRegistry()


class TallyEvent(Event):
    source = "tally"


class TallyOpened(TallyEvent):
    tally: Ref


class Counted(TallyEvent):
    tally: Ref
    n: Persons


REGISTRY.register(TallyOpened)
REGISTRY.register(Counted)


class Tally(Aggregate):
    kind = "tally"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.total = 0

    def count(self, n: int, at: datetime) -> None:
        self.must_exist()
        if self.total + n > 10:
            raise RuleBroken("tally_caps_at_ten", f"{self.id} would pass ten")
        self.record(Counted(tally=self.id, n=n), at)

    def apply(self, data: Event, at: datetime) -> None:
        if isinstance(data, Counted):
            self.total += data.n

    def view(self) -> dict[str, Any]:
        return {"tally": self.id, "total": self.total, "version": self.latest_version}


class OpenTally(Command):
    tally: Ref
    opened_at: Happened


class Count(Command):
    tally: Ref
    n: Persons
    counted_at: Happened


class CountSlowly(Count):
    """Loads, waits, then decides: two of these at once decide on the same version."""


class CountAgainstAnother(Count):
    """Another writer counts on the same tally between this one's load and its commit, on
    every attempt: its decision is stale every time."""


class CountGuarded(Count):
    """Refused by a guard inside the commit's transaction."""


class Crash(Command):
    """A handler bug."""


async def open_tally(cmd: OpenTally, load: Loader) -> Decision:
    tally = await load.one(Tally, cmd.tally)
    if tally.exists:
        raise RuleBroken("tally_opens_once", f"{tally.id} is open")
    tally.record(TallyOpened(tally=cmd.tally), cmd.opened_at)
    return Decision.created(tally)


async def count(cmd: Count, load: Loader) -> Decision:
    tally = await load.one(Tally, cmd.tally)
    if isinstance(cmd, CountSlowly):
        await asyncio.sleep(0.2)
    if isinstance(cmd, CountAgainstAnother):
        other = NewEvent(Counted(tally=tally.id, n=1), cmd.counted_at)
        await load.store.append(tally.id, tally.latest_version, [other], Context("worker:other"))
    tally.count(cmd.n, cmd.counted_at)
    decision = Decision.changed_one(tally)
    if isinstance(cmd, CountGuarded):

        async def guard(conn: AsyncConnection) -> None:
            raise RuleBroken("guarded", "the guard said no")

        decision.in_transaction = guard
    return decision


async def crash(cmd: Crash, load: Loader) -> Decision:
    raise RuntimeError("a bug")


HANDLERS: dict[type[Command], Handler] = {
    OpenTally: open_tally,
    Count: count,
    CountSlowly: count,
    CountGuarded: count,
    CountAgainstAnother: count,
    Crash: crash,
}
COMMANDS = {c.name(): c for c in HANDLERS}

metadata = MetaData()
keys = idempotency_table(metadata, "tally")


async def tally_service(database_url: str) -> AsyncIterator[CommandService]:
    db = Database(database_url)
    service = CommandService(EventStore(db, "tally", REGISTRY), HANDLERS, keys)
    await service.setup()
    try:
        yield service
    finally:
        await db.dispose()
