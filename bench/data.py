"""The events every measure uses: hotline CallReceived, appended to a SQLite EventStore the
way a service appends them, so the bodies on the bus are exactly the relay's bytes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import delete

from shared.contracts.envelope import Context, NewEvent
from shared.contracts.hotline import CallReceived
from shared.contracts.signatures import Signer
from shared.contracts.types import Place
from shared.eventstore import Append, Database, EventStore
from shared.eventstore.schema import outbox_progress

SOURCE = "hotline"
CHUNK = 5000
CST = timezone(timedelta(hours=8), "Asia/Shanghai")
PLACE = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
CATEGORIES = ("psychological_counselling", "emotional_support", "epidemic_consultation")
GROUPS = ("elderly_alone", "disabled", "low_income", "child", "general")

# (subject suffix = event type, body, event_id): plain tuples of str/bytes, which the garbage
# collector stops tracking, so holding N of them does not slow the measures that follow.
Message = tuple[str, bytes, str]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


def _appends(start: int, count: int) -> list[Append]:
    at = datetime(2020, 2, 10, 9, 30, tzinfo=CST)
    out = []
    for i in range(start, start + count):
        data = CallReceived(
            call=f"call:{i:07d}",
            point="point:nanzhou-1",
            place=PLACE,
            category=CATEGORIES[i % len(CATEGORIES)],
            group=GROUPS[i % len(GROUPS)],
            channel="phone",
            caller=f"person:{i:06x}",
        )
        out.append(Append(f"call-{i:07d}", 0, [NewEvent(data, at + timedelta(seconds=i))]))
    return out


async def fill_store(path: Path, n: int, signer: Signer | None = None) -> EventStore:
    """A fresh store holding ``n`` events, appended with `append_all` in chunks of 5000 (and
    signed as the services' stores sign, with ``signer``)."""
    store = EventStore(Database(sqlite_url(path)), SOURCE, signer=signer)
    await store.setup()
    ctx = Context(actor="worker:w17")
    for start in range(0, n, CHUNK):
        await store.append_all(_appends(start, min(CHUNK, n - start)), ctx)
    return store


async def messages(store: EventStore) -> list[Message]:
    rows = await store.read_from(0, 10**9)
    return [(row.type, row.body.encode(), row.event_id) for row in rows]


async def reset_progress(store: EventStore) -> None:
    """Forget how far a relay got, so the next relay publishes the store from the start."""
    async with store.db.write() as conn:
        await conn.execute(delete(outbox_progress))
