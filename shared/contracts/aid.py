"""Events of the aid service: the rescue service net (抗疫救援服务网).

The time an event happened is the envelope's ``occurred_at``. Every event that reporting
counts (requested, delivered, cancelled, emergency) carries the group and the ``Place``
(district, street, station, organisation), so the fold needs no lookup.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, model_validator

from shared.contracts.corrections import Recorded, Voiding
from shared.contracts.envelope import Event
from shared.contracts.registry import event
from shared.contracts.types import (
    AidItem,
    AidKind,
    Group,
    Needs,
    Persons,
    Place,
    Ref,
    Urgency,
)

Origin = Literal["hotline_referral", "station_visit", "residents_committee", "hospital"]
Cancellation = Literal[
    "need_met_elsewhere",
    "person_declined",
    "person_unreachable",
    "duplicate_request",
    "other",
]
EmergencyKind = Literal["sudden_illness", "fall", "other"]  # 突发重病、摔伤
Assignee = Annotated[
    str, Field(max_length=64, pattern=r"^(worker|volunteer):[A-Za-z0-9._-]+$", strict=True)
]
"""A social worker's or a volunteer's opaque reference: nobody else delivers aid."""


class AidEvent(Event):
    source = "aid"


@event
class AidRequested(AidEvent):
    """Someone in hardship needs help at their door. ``origin`` says who asked (the event's
    ``source`` is the producing service); ``referral`` is set exactly when a hotline referral
    opened it."""

    request: Ref
    person: Ref
    group: Group
    place: Place
    needs: Needs
    urgency: Urgency
    origin: Origin
    referral: Ref | None = None

    @model_validator(mode="after")
    def _referral_iff_from_hotline(self) -> AidRequested:
        if (self.origin == "hotline_referral") != (self.referral is not None):
            raise ValueError("referral: required exactly when origin is hotline_referral")
        return self


@event
class AidAssigned(AidEvent):
    """A request handed to a social worker or volunteer (the courier, 快递员)."""

    request: Ref
    assignee: Assignee


@event
class AidDelivered(AidEvent):
    """One aid action (紧急援助) done at the door: the 5,478 counts these, and their
    ``persons_served`` add up to the 服务人次 (10,540)."""

    request: Ref
    delivery: Ref
    person: Ref
    group: Group
    place: Place
    items: tuple[AidItem, ...] = Field(min_length=1, max_length=50)
    persons_served: Persons

    @property
    def kinds(self) -> tuple[AidKind, ...]:
        """The distinct kinds delivered, in a stable order: an action counts once per kind."""
        return tuple(sorted({item.kind for item in self.items}))


@event
class AidCancelled(AidEvent):
    """A request closed without a delivery."""

    request: Ref
    group: Group
    place: Place
    reason: Cancellation


@event
class EmergencyCaseOpened(AidEvent):
    """A sudden illness or a fall that needs urgent action; ``request`` is the aid request
    the case opened."""

    case: Ref
    request: Ref
    kind: EmergencyKind
    person: Ref
    group: Group
    place: Place


# -- corrections (shared/contracts/corrections.py) ---------------------------------------


@event
class AidDeliveryVoided(AidEvent, Voiding):
    """An aid delivery recorded by mistake taken out of the figures, or recorded again as it
    really was (``replacement``). Where it was the delivery that closed its request (the
    first recorded), ``request_reopened``: none is left, the request is open again; or
    ``request_closed_again_at``: the delivery that closes it now (the next one recorded, or
    the replacement) happened then. Goods the delivery drew from a campaign stay drawn: the
    draw is the donation service's record of goods that left."""

    fact_field = "delivery"
    request: Ref
    delivery: Ref
    voided: tuple[Recorded[AidDelivered], ...] = Field(min_length=1, max_length=1)
    replacement: tuple[Recorded[AidDelivered], ...] = Field(default=(), max_length=1)
    request_reopened: bool = False
    request_closed_again_at: AwareDatetime | None = None
