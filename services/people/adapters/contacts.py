"""What the people service learns of its people from the other services' events, kept with
references and times only."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Table, case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from services.people.adapters import tables


def _insert(conn: AsyncConnection, table: Table):  # type: ignore[no-untyped-def]
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


async def contacted(conn: AsyncConnection, latest: Mapping[str, int]) -> None:
    """Each kept person's last contact moved to the given time when that is later. Only the
    people whose details are kept: most callers never give any, and the table stays theirs."""
    if not latest:
        return
    found = await conn.execute(
        select(tables.keys.c.person).where(tables.keys.c.person.in_(sorted(latest)))
    )
    latest = {p: latest[p] for p in found.scalars()}
    if not latest:
        return
    insert = _insert(conn, tables.contacts)
    column = tables.contacts.c.last_contact
    excluded = insert.excluded.last_contact
    statement = insert.on_conflict_do_update(
        index_elements=["person"],
        set_={"last_contact": case((excluded > column, excluded), else_=column)},
    )
    await conn.execute(statement, [{"person": p, "last_contact": t} for p, t in latest.items()])


async def requested(conn: AsyncConnection, requests: Mapping[str, str]) -> None:
    """Which person each aid request serves (a request is opened once)."""
    if requests:
        statement = _insert(conn, tables.requests).on_conflict_do_nothing()
        await conn.execute(statement, [{"request": r, "person": p} for r, p in requests.items()])


async def assigned(conn: AsyncConnection, assignments: Iterable[tuple[str, str]]) -> None:
    """(request, assignee) pairs: the assignee may read the details of the request's person."""
    pairs = list(assignments)
    if not pairs:
        return
    wanted = sorted({r for r, _ in pairs})
    found = await conn.execute(
        select(tables.requests.c.request, tables.requests.c.person).where(
            tables.requests.c.request.in_(wanted)
        )
    )
    person_of = dict(found.tuples().all())
    rows = {(person_of[r], a) for r, a in pairs if r in person_of}
    if rows:
        statement = _insert(conn, tables.assignees).on_conflict_do_nothing()
        await conn.execute(statement, [{"person": p, "assignee": a} for p, a in sorted(rows)])


async def may_serve(conn: AsyncConnection, person: str, assignee: str) -> bool:
    row = await conn.execute(
        select(tables.assignees.c.person).where(
            tables.assignees.c.person == person, tables.assignees.c.assignee == assignee
        )
    )
    return row.first() is not None


async def due(conn: AsyncConnection, before: int, limit: int) -> list[str]:
    """People whose last contact is before ``before`` and whose details are still kept."""
    query = (
        select(tables.contacts.c.person)
        .join(tables.keys, tables.keys.c.person == tables.contacts.c.person)
        .where(tables.contacts.c.last_contact < before)
        .order_by(tables.contacts.c.person)
        .limit(limit)
    )
    return [row[0] for row in await conn.execute(query)]
