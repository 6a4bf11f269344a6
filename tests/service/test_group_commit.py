"""The group commit keeps an `EventCheck` that passed for the next groups only while nobody
has appended since and no event of its types was appended: then it runs again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from service_parts import REGISTRY, Counted, TallyOpened, keys
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.contracts.envelope import Context, NewEvent
from shared.domain.errors import RuleBroken
from shared.eventstore import Append, Database, EventStore
from shared.service.commit import EventCheck, GroupCommit
from shared.service.replies import Reply

AT = datetime(2020, 2, 1, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def store(database_url: str) -> AsyncIterator[EventStore]:
    db = Database(database_url)
    event_store = EventStore(db, "tally", REGISTRY)
    await event_store.setup()
    await db.create_schema(keys.metadata)
    try:
        yield event_store
    finally:
        await db.dispose()


class Check:
    """An EventCheck on Counted events that counts its runs and refuses while told to."""

    def __init__(self) -> None:
        self.runs = 0
        self.refuse = False

    def __call__(self) -> EventCheck:
        async def check(conn: AsyncConnection) -> None:
            self.runs += 1
            if self.refuse:
                raise RuleBroken("refused", "the check said no")

        return EventCheck(frozenset({"Counted"}), "counted", check)


def opened(tally: str) -> list[Append]:
    return [Append(tally, 0, [NewEvent(TallyOpened(tally=tally), AT)])]


async def commit(writer: GroupCommit, appends: list[Append], guard: EventCheck | None) -> None:
    reply = Reply(201, b"{}")
    assert await writer.commit(appends, guard, reply, Context(), None, "") == reply


async def test_a_passed_check_runs_again_only_when_something_was_appended_since(
    store: EventStore,
) -> None:
    writer, check = GroupCommit(store, keys), Check()
    await commit(writer, opened("tally:a"), check())
    await commit(writer, opened("tally:b"), check())
    assert check.runs == 1  # the head is where the last group left it

    # Another writer (a replica, another transaction) appends: the check cannot know what.
    await store.append("tally:c", 0, [NewEvent(TallyOpened(tally="tally:c"), AT)], Context())
    await commit(writer, opened("tally:d"), check())
    assert check.runs == 2

    # This writer appends an event of the check's types: it may answer otherwise now.
    await commit(
        writer, [Append("tally:a", 1, [NewEvent(Counted(tally="tally:a", n=1), AT)])], None
    )
    check.refuse = True
    with pytest.raises(RuleBroken):
        await commit(writer, opened("tally:e"), check())
    assert check.runs == 3

    # A refusal is never kept: the next group asks again.
    check.refuse = False
    await commit(writer, opened("tally:e"), check())
    await commit(writer, opened("tally:f"), check())
    assert check.runs == 4
    assert await store.head() == 7
