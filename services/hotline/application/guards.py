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
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from services.hotline.adapters import tables
from shared.domain.errors import RuleBroken
from shared.service.commit import EventCheck, Guard

Work = Literal["shifts", "calls", "follow_ups"]


CLOSURE = frozenset({"HotlinePointClosed"})


def open_points(points: Iterable[str], work: Work) -> EventCheck:
    """The points must still be open. It reads only closures, so concurrent calls at a point
    share one check per group commit (`EventCheck`)."""
    return _open_points(tuple(sorted(set(points))), work)


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


def start_shifts(points: Iterable[str], claims: Mapping[str, str]) -> Guard:
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
