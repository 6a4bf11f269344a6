"""The hotline's rules that span aggregates, re-checked where no stale read can fool them: in
the commit's transaction, under the store's lock (`Decision.in_transaction`).

- A closed point takes no work: a replica's cached point may still be open (see `loader`),
  so closure is read from the store's events.
- One open shift per worker: the open-shift table is read, then written with the shift.

Each decision's guard runs after the decisions committed before it in the same transaction
(`shared.service.commit`): it sees their closures and claims.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from services.hotline.adapters import tables
from services.hotline.domain.point import HotlinePoint, refuse_closure_before
from shared.domain.errors import RuleBroken
from shared.service.commit import EventCheck, Guard

Work = Literal["shifts", "calls", "follow_ups"]


CLOSURE = frozenset({"HotlinePointClosed"})


def open_points(points: Iterable[str | HotlinePoint], work: Work) -> EventCheck:
    """The points the decision saw open must still be open: a point it saw closed has closed
    for good, and the decision compared its records' times with that closure (a record dated
    before it is welcome whenever it arrives). A point given by id alone is checked for any
    closure. It reads only closures, so concurrent calls at a point share one check per group
    commit (`EventCheck`)."""
    seen_open = {p if isinstance(p, str) else p.id for p in points if _seen_open(p)}
    return _open_points(tuple(sorted(seen_open)), work)


def _seen_open(point: str | HotlinePoint) -> bool:
    return isinstance(point, str) or point.closed_at is None


@functools.lru_cache(maxsize=1024)
def _open_points(wanted: tuple[str, ...], work: Work) -> EventCheck:
    # One check object per points and work, not a closure and a dataclass per call.

    async def guard(conn: AsyncConnection) -> None:
        shut = sorted(await tables.closed_points_among(conn, wanted))
        if shut:
            raise RuleBroken(
                f"closed_point_takes_no_{work}", f"{shut[0]} is closed: it takes no {work}"
            )

    return EventCheck(CLOSURE, ("open_points", wanted, work), guard)


def closing_after_records(point: str, at: datetime, read: int) -> Guard:
    """No record at the point dated after its closure has been committed since the decision
    read them (up to position ``read``)."""

    async def guard(conn: AsyncConnection) -> None:
        last, _ = await tables.last_record_at(conn, point, after=read)
        refuse_closure_before(point, at, last)

    return guard


def start_shifts(points: Iterable[str | HotlinePoint], claims: Mapping[str, str]) -> Guard:
    """The points must still be open and the workers (worker → the shift now open) off duty;
    then their shifts are theirs."""
    points_open = open_points(points, "shifts")
    claimed = dict(claims)

    async def guard(conn: AsyncConnection) -> None:
        await points_open(conn)
        on_duty = await tables.open_shifts_of(conn, list(claimed)) if claimed else {}
        for worker in claimed:
            if worker in on_duty:
                raise RuleBroken(
                    "one_open_shift_per_worker",
                    f"{worker} is still on {on_duty[worker]}: end it first",
                )
        await tables.claim_shifts(conn, claimed)

    return guard


def end_shift(shift: str) -> Guard:
    """The worker is off duty again."""

    async def guard(conn: AsyncConnection) -> None:
        await tables.release_shifts(conn, [shift])

    return guard
