"""AidRequest: someone in hardship needs help at their door; requested, assigned to a social
worker or volunteer (the courier, 快递员), delivered (one or more aid actions), or cancelled.

Rules: nothing is delivered on a cancelled request; a delivered request cannot be
cancelled; a cancelled request is not assigned; nothing happens before the request was made.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import NAMESPACE_URL, uuid5

from shared.contracts.aid import (
    AidAssigned,
    AidCancelled,
    AidDelivered,
    AidDeliveryVoided,
    AidRequested,
    Cancellation,
    Origin,
)
from shared.contracts.envelope import Event
from shared.contracts.hotline import ReferredToAid
from shared.contracts.types import AidItem, Group, Need, Place, Urgency
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import RuleBroken
from shared.domain.voids import restate

Status = Literal["requested", "assigned", "delivered", "cancelled"]

# Fixed forever: the request id of a referral must come out the same in every process and
# on every restart, or a redelivered referral would open a second request.
_REFERRAL_NAMESPACE = uuid5(NAMESPACE_URL, "https://kapok/aid/referral")


def request_id_for_referral(referral: str) -> str:
    """The one request a hotline referral opens: derived, so a second attempt to open it
    finds the first (its stream exists) instead of making another."""
    return f"request:{uuid5(_REFERRAL_NAMESPACE, referral)}"


class AidRequest(Aggregate):
    kind = "request"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.person = ""
        self.group: Group | None = None
        self.place: Place | None = None
        self.needs: tuple[Need, ...] = ()
        self.urgency: Urgency | None = None
        self.origin: Origin | None = None
        self.referral: str | None = None
        self.requested_at: datetime | None = None
        self.assignee: str | None = None
        self.assigned_at: datetime | None = None  # the last assignment's business time
        self.deliveries: list[dict[str, Any]] = []
        self.persons_served = 0
        self.cancelled_at: datetime | None = None
        self.cancellation: Cancellation | None = None

    @classmethod
    def request(
        cls,
        id: str,
        person: str,
        group: Group,
        place: Place,
        needs: tuple[Need, ...],
        urgency: Urgency,
        origin: Origin,
        at: datetime,
        referral: str | None = None,
    ) -> AidRequest:
        request = cls(id)
        request.record(
            AidRequested(
                request=id,
                person=person,
                group=group,
                place=place,
                needs=needs,
                urgency=urgency,
                origin=origin,
                referral=referral,
            ),
            at,
        )
        return request

    @classmethod
    def from_referral(cls, referred: ReferredToAid, at: datetime) -> AidRequest:
        """The request a hotline referral opens: the person, group, place (the station that
        will serve them), needs and urgency are the referral's."""
        return cls.request(
            request_id_for_referral(referred.referral),
            referred.person,
            referred.group,
            referred.place,
            referred.needs,
            referred.urgency,
            "hotline_referral",
            at,
            referral=referred.referral,
        )

    @property
    def status(self) -> Status:
        if self.cancelled_at is not None:
            return "cancelled"
        if self.deliveries:
            return "delivered"
        if self.assignee is not None:
            return "assigned"
        return "requested"

    def assign(self, assignee: str, at: datetime) -> None:
        """An assignment dated before the request's cancellation is history, taken whenever it
        arrives; one dated after it is refused."""
        self.must_exist()
        if self.cancelled_at is not None and at > self.cancelled_at:
            raise RuleBroken(
                "cancelled_request_is_not_assigned",
                f"{self.id} was cancelled at {iso(self.cancelled_at)} ({self.cancellation})",
            )
        self._must_follow_request("assigned_at", at)
        if assignee == self.assignee:
            raise RuleBroken("assignment_changes_assignee", f"{self.id} is already {assignee}'s")
        self.record(AidAssigned(request=self.id, assignee=assignee), at)

    def deliver(
        self, delivery: str, items: tuple[AidItem, ...], persons_served: int, at: datetime
    ) -> None:
        """One aid action at the door. A request may get more than one (medicine today,
        vegetables again next week): each is an action the article counts."""
        self._must_be_open("delivered_at", at, "cancelled_request_gets_no_delivery")
        assert self.group and self.place
        self.record(
            AidDelivered(
                request=self.id,
                delivery=delivery,
                person=self.person,
                group=self.group,
                place=self.place,
                items=items,
                persons_served=persons_served,
            ),
            at,
        )

    def cancel(self, reason: Cancellation, at: datetime) -> None:
        self._must_be_open("cancelled_at", at, "request_cancels_once")
        if self.deliveries:
            raise RuleBroken(
                "delivered_request_cannot_be_cancelled",
                f"{self.id} has had a delivery: it cannot be cancelled",
            )
        if self.assigned_at is not None and self.assigned_at > at:
            raise RuleBroken(
                "request_cancels_after_its_records",
                f"{self.id} was assigned to {self.assignee} at {iso(self.assigned_at)}, after "
                f"the cancellation at {iso(at)}",
            )
        assert self.group and self.place
        self.record(
            AidCancelled(request=self.id, group=self.group, place=self.place, reason=reason), at
        )

    def _must_be_open(self, field: str, at: datetime, rule: str) -> None:
        self.must_exist()
        if self.cancelled_at is not None:
            raise RuleBroken(rule, f"{self.id} is cancelled ({self.cancellation})")
        self._must_follow_request(field, at)

    def _must_follow_request(self, field: str, at: datetime) -> None:
        assert self.requested_at is not None
        if at < self.requested_at:
            raise RuleBroken(
                "request_acted_on_after_requested",
                f"{field} {iso(at)} is before {self.id} was requested",
            )

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case AidRequested():
                self.person, self.group, self.place = data.person, data.group, data.place
                self.needs, self.urgency = data.needs, data.urgency
                self.origin, self.referral, self.requested_at = data.origin, data.referral, at
            case AidAssigned():
                # A late log of an earlier assignment does not hand the request back.
                if self.assigned_at is None or at >= self.assigned_at:
                    self.assignee, self.assigned_at = data.assignee, at
            case AidDelivered():
                self.persons_served += data.persons_served
                self.deliveries.append(
                    {
                        "delivery": data.delivery,
                        "items": [item.model_dump(mode="json") for item in data.items],
                        "kinds": list(data.kinds),
                        "persons_served": data.persons_served,
                        "delivered_at": at.isoformat(),
                    }
                )
            case AidCancelled():
                self.cancelled_at, self.cancellation = at, data.reason
            case AidDeliveryVoided():
                restate(self, data)

    def view(self) -> dict[str, Any]:
        return {
            "request": self.id,
            "status": self.status,
            "person": self.person,
            "group": self.group,
            "place": self.place.model_dump() if self.place else None,
            "needs": list(self.needs),
            "urgency": self.urgency,
            "origin": self.origin,
            "referral": self.referral,
            "requested_at": iso(self.requested_at),
            "assignee": self.assignee,
            "deliveries": self.deliveries,
            "persons_served": self.persons_served,
            "cancelled_at": iso(self.cancelled_at),
            "cancellation": self.cancellation,
            "version": self.latest_version,
        }
