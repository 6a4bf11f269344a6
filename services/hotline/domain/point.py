"""HotlinePoint: a hotline point at a station or project site, opened and closed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from shared.contracts.envelope import Event
from shared.contracts.hotline import HotlinePointClosed, HotlinePointOpened, PointClosure, PointSite
from shared.contracts.types import Place
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import InvalidInput, RuleBroken


class HotlinePoint(Aggregate):
    kind = "point"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.place: Place | None = None
        self.site: PointSite | None = None
        self.opened_at: datetime | None = None
        self.closed_at: datetime | None = None
        self.reason: PointClosure | None = None

    @classmethod
    def open(cls, id: str, place: Place, site: PointSite, at: datetime) -> HotlinePoint:
        point = cls(id)
        point.record(HotlinePointOpened(point=id, place=place, site=site), at)
        return point

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.closed_at is None

    def close(self, reason: PointClosure, at: datetime) -> None:
        self.must_exist()
        if self.closed_at is not None:
            raise RuleBroken("point_closes_once", f"{self.id} is already closed")
        assert self.place is not None and self.opened_at is not None
        if at < self.opened_at:
            raise InvalidInput("closed_at", f"{self.id} opened at {iso(self.opened_at)}")
        self.record(HotlinePointClosed(point=self.id, place=self.place, reason=reason), at)

    def takes(
        self, work: Literal["shifts", "calls", "follow_ups"], at: datetime, field: str
    ) -> Place:
        """The point's place, if it can take this work at ``at``: open now, and open by then."""
        self.must_exist()
        if self.closed_at is not None:
            raise RuleBroken(
                f"closed_point_takes_no_{work}", f"{self.id} is closed: it takes no {work}"
            )
        assert self.place is not None and self.opened_at is not None
        if at < self.opened_at:
            raise InvalidInput(field, f"before {self.id} opened ({iso(self.opened_at)})")
        return self.place

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case HotlinePointOpened():
                self.place, self.site, self.opened_at = data.place, data.site, at
            case HotlinePointClosed():
                self.closed_at, self.reason = at, data.reason

    def view(self) -> dict[str, Any]:
        return {
            "point": self.id,
            "status": "open" if self.is_open else "closed",
            "place": self.place.model_dump() if self.place else None,
            "site": self.site,
            "opened_at": iso(self.opened_at),
            "closed_at": iso(self.closed_at),
            "closure_reason": self.reason,
            "version": self.latest_version,
        }
