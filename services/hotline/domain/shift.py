"""Shift: a social worker on duty at an open point, started and ended."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from services.hotline.domain.point import HotlinePoint
from shared.contracts.envelope import Event
from shared.contracts.hotline import ShiftEnded, ShiftStarted, ShiftVoided
from shared.contracts.types import MAX_SHIFT_MINUTES, Place
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import RuleBroken
from shared.domain.voids import restate

OVERLAP = "shifts_of_a_worker_do_not_overlap"


class ShiftsOverlap(RuleBroken):
    """Two shifts of one worker overlap in time. ``later`` is the listed shift refused (its
    place in the list given), ``earlier`` the listed one it overlaps, or None for the shift the
    worker is on now."""

    def __init__(self, message: str, later: int, earlier: int | None) -> None:
        super().__init__(OVERLAP, message)
        self.later, self.earlier = later, earlier


class Shift(Aggregate):
    kind = "shift"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.worker = ""
        self.point = ""
        self.place: Place | None = None
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.minutes_on_duty: int | None = None

    @classmethod
    def start(
        cls, id: str, worker: str, point: HotlinePoint, at: datetime, open_shift: str | None
    ) -> Shift:
        """``open_shift``: the worker's shift still open, if any. One aggregate cannot see
        another's; the application looks it up (and a unique key guards the race)."""
        place = point.takes("shifts", at)
        if open_shift is not None:
            raise RuleBroken(
                "one_open_shift_per_worker", f"{worker} is still on {open_shift}: end it first"
            )
        shift = cls(id)
        shift.record(ShiftStarted(shift=id, worker=worker, point=point.id, place=place), at)
        return shift

    @staticmethod
    def refuse_overlaps(listed: Sequence[Shift], on_duty: Iterable[Shift] = ()) -> None:
        """A worker is on one shift at a time: ``listed`` (a day's log of started and perhaps
        ended shifts) may hold several shifts of a worker only one after another (one may
        start as the other ends), and none of them may overlap the shift ``on_duty`` (a shift
        still open, of a worker the log names) since its start. A shift not ended runs on.
        Raises `ShiftsOverlap` for the first overlap in the order listed."""
        by_worker: dict[str, list[tuple[int | None, Shift]]] = {}
        for shift in on_duty:
            by_worker.setdefault(shift.worker, []).append((None, shift))
        for index, shift in enumerate(listed):
            by_worker.setdefault(shift.worker, []).append((index, shift))
        found: list[tuple[int, int | None]] = []
        for shifts in by_worker.values():
            if len(shifts) > 1:
                found.extend(_overlaps(shifts))
        if found:
            later, earlier = min(found, key=lambda pair: pair[0])
            a, b = listed[later], (listed[earlier] if earlier is not None else None)
            other = f"listed at {earlier}" if earlier is not None else "the shift on duty now"
            other_shift = b if b is not None else next(s for s in on_duty if s.worker == a.worker)
            raise ShiftsOverlap(
                f"{a.worker}'s shift {_span(a)} overlaps {other} ({other_shift.id}, "
                f"{_span(other_shift)}): a worker is on one shift at a time",
                later,
                earlier,
            )

    @property
    def is_open(self) -> bool:
        return self.started_at is not None and self.ended_at is None

    def end(self, at: datetime) -> None:
        self.must_exist()
        if self.ended_at is not None:
            raise RuleBroken("shift_ends_once", f"{self.id} already ended at {iso(self.ended_at)}")
        assert self.started_at is not None and self.place is not None
        if at < self.started_at:
            raise RuleBroken(
                "shift_ends_after_it_starts",
                f"ended_at {iso(at)} is before {self.id} started ({iso(self.started_at)})",
            )
        minutes = int((at - self.started_at).total_seconds() // 60)
        if minutes > MAX_SHIFT_MINUTES:
            raise RuleBroken(
                "shift_lasts_at_most_a_week",
                f"{self.id} started {iso(self.started_at)}: a shift on the line lasts at most "
                f"{MAX_SHIFT_MINUTES // 1440} days (void a shift left open by mistake)",
            )
        self.record(
            ShiftEnded(
                shift=self.id,
                worker=self.worker,
                point=self.point,
                place=self.place,
                minutes_on_duty=minutes,
            ),
            at,
        )

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case ShiftStarted():
                self.worker, self.point, self.place = data.worker, data.point, data.place
                self.started_at = at
            case ShiftEnded():
                self.ended_at, self.minutes_on_duty = at, data.minutes_on_duty
            case ShiftVoided():
                restate(self, data)

    def view(self) -> dict[str, Any]:
        return {
            "shift": self.id,
            "status": "open" if self.is_open else "ended",
            "worker": self.worker,
            "point": self.point,
            "place": self.place.model_dump() if self.place else None,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "minutes_on_duty": self.minutes_on_duty,
            "version": self.latest_version,
        }


def _overlaps(shifts: list[tuple[int | None, Shift]]) -> list[tuple[int, int | None]]:
    """(listed, overlapped) pairs among one worker's shifts: by start, each against the one
    that ends last of those started before it. Only a listed shift is ever the one refused."""
    assert all(s.started_at is not None for _, s in shifts)
    ordered = sorted(shifts, key=lambda pair: (pair[1].started_at, pair[0] is not None))
    found: list[tuple[int, int | None]] = []
    reach: tuple[int | None, Shift] | None = None  # the shift running latest so far
    for index, shift in ordered:
        if reach is not None and _runs_past(reach[1], shift.started_at):
            first, second = reach[0], index
            if second is None or (first is not None and first > second):
                first, second = second, first  # refuse the one listed later
            assert second is not None
            found.append((second, first))
        if reach is None or _ends_after(shift, reach[1]):
            reach = (index, shift)
    return found


def _runs_past(shift: Shift, at: datetime | None) -> bool:
    assert at is not None
    return shift.ended_at is None or shift.ended_at > at


def _ends_after(shift: Shift, other: Shift) -> bool:
    if shift.ended_at is None:
        return True
    return other.ended_at is not None and shift.ended_at > other.ended_at


def _span(shift: Shift) -> str:
    return f"from {iso(shift.started_at)} to {iso(shift.ended_at) or 'now'}"
