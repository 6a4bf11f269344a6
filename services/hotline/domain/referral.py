"""Referral: from a call, a person referred to the rescue net (转介援助), for aid to act on.

Its own stream: the aid service consumes ReferredToAid by referral, and a call may lead to
more than one referral without the call's stream becoming a point of contention.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.hotline.domain.call import Call
from shared.contracts.envelope import Event
from shared.contracts.hotline import ReferralVoided, ReferredToAid
from shared.contracts.types import Group, Need, Place, Urgency
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import RuleBroken
from shared.domain.voids import restate


class Referral(Aggregate):
    kind = "referral"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.call = ""
        self.point = ""
        self.person = ""
        self.group: Group | None = None
        self.place: Place | None = None
        self.needs: tuple[Need, ...] = ()
        self.urgency: Urgency | None = None
        self.referred_at: datetime | None = None

    @classmethod
    def from_call(
        cls,
        id: str,
        call: Call,
        needs: tuple[Need, ...],
        urgency: Urgency,
        at: datetime,
        person: str | None = None,
        group: Group | None = None,
        place: Place | None = None,
    ) -> Referral:
        """The person, group and place default to the call's: the caller, their group and
        the station that took the call (usually the one that serves them)."""
        call.must_exist()
        assert call.received_at and call.group and call.place
        if at < call.received_at:
            raise RuleBroken(
                "referral_after_its_call", f"referred_at {iso(at)} is before {call.id} was received"
            )
        person = person or call.caller
        if person is None:
            raise RuleBroken(
                "referral_names_a_person",
                f"{call.id} has an anonymous caller: name the person referred (an opaque ref)",
            )
        referral = cls(id)
        referral.record(
            ReferredToAid(
                referral=id,
                call=call.id,
                point=call.point,
                person=person,
                group=group or call.group,
                place=place or call.place,
                needs=needs,
                urgency=urgency,
            ),
            at,
        )
        return referral

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case ReferredToAid():
                self.call, self.point, self.person = data.call, data.point, data.person
                self.group, self.place = data.group, data.place
                self.needs, self.urgency, self.referred_at = data.needs, data.urgency, at
            case ReferralVoided():
                restate(self, data)

    def view(self) -> dict[str, Any]:
        return {
            "referral": self.id,
            "call": self.call,
            "point": self.point,
            "person": self.person,
            "group": self.group,
            "place": self.place.model_dump() if self.place else None,
            "needs": list(self.needs),
            "urgency": self.urgency,
            "referred_at": iso(self.referred_at),
            "version": self.latest_version,
        }
