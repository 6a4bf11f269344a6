"""Shift: a social worker on duty at an open point, started and ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.hotline.domain.point import HotlinePoint
from shared.contracts.envelope import Event
from shared.contracts.hotline import ShiftEnded, ShiftStarted
from shared.contracts.types import Place
from shared.service.aggregate import Aggregate, iso
from shared.service.errors import InvalidInput, RuleBroken


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
        place = point.takes("shifts", at, "started_at")
        if open_shift is not None:
            raise RuleBroken(
                "one_open_shift_per_worker", f"{worker} is still on {open_shift}: end it first"
            )
        shift = cls(id)
        shift.record(ShiftStarted(shift=id, worker=worker, point=point.id, place=place), at)
        return shift

    @property
    def is_open(self) -> bool:
        return self.started_at is not None and self.ended_at is None

    def end(self, at: datetime) -> None:
        self.must_exist()
        if self.ended_at is not None:
            raise RuleBroken("shift_ends_once", f"{self.id} already ended at {iso(self.ended_at)}")
        assert self.started_at is not None and self.place is not None
        if at < self.started_at:
            raise InvalidInput("ended_at", f"before {self.id} started ({iso(self.started_at)})")
        minutes = int((at - self.started_at).total_seconds() // 60)
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
