"""HotlinePoint: a hotline point at a station or project site, opened and closed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from shared.contracts.envelope import Event
from shared.contracts.hotline import HotlinePointClosed, HotlinePointOpened, PointClosure, PointSite
from shared.contracts.types import Place
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import RuleBroken

Work = Literal["shifts", "calls", "follow_ups"]


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

    def close(
        self, reason: PointClosure, at: datetime, last: tuple[str, datetime] | None = None
    ) -> None:
        """``last``: the record made at the point dated last, and when (the application finds
        it, as no aggregate sees another's): a closure dated before it would leave that record
        after the point's closure."""
        self.must_exist()
        if self.closed_at is not None:
            raise RuleBroken("point_closes_once", f"{self.id} is already closed")
        assert self.place is not None and self.opened_at is not None
        if at < self.opened_at:
            raise RuleBroken(
                "point_closes_after_it_opens", f"{self.id} opened at {iso(self.opened_at)}"
            )
        refuse_closure_before(self.id, at, last)
        self.record(HotlinePointClosed(point=self.id, place=self.place, reason=reason), at)

    def takes(self, work: Work, at: datetime) -> Place:
        """The point's place, if it can take this work dated ``at``: open by then and not yet
        closed then, whenever the record arrives (a station's log may come days late)."""
        self.must_exist()
        assert self.place is not None and self.opened_at is not None
        if at < self.opened_at:
            raise RuleBroken(
                f"point_takes_{work}_once_open",
                f"{iso(at)} is before {self.id} opened ({iso(self.opened_at)})",
            )
        if self.closed_at is not None and at > self.closed_at:
            raise RuleBroken(
                f"closed_point_takes_no_{work}",
                f"{self.id} closed at {iso(self.closed_at)}: it takes no {work} after",
            )
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


def refuse_closure_before(point: str, at: datetime, last: tuple[str, datetime] | None) -> None:
    """A point closes no earlier than the last record made there (a call received, a shift
    started, a follow-up scheduled): refused naming that record."""
    if last is not None and last[1] > at:
        record, when = last
        raise RuleBroken(
            "point_closes_after_its_records",
            f"{record} at {point} is dated {iso(when)}, after the closure at {iso(at)}: close "
            "it no earlier than its last record",
        )
