"""The aid service's commands: what a station, a courier or a script asks it to do.

Requests opened by a hotline referral do not come through here: the referral consumer opens
them from ReferredToAid (see `entrypoints.referrals`), so ``origin`` here excludes it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.contracts.aid import Assignee, Cancellation, EmergencyKind
from shared.contracts.refs import PersonRef
from shared.contracts.types import AidItem, GivenPlace, Group, Needs, Persons, Ref, Urgency
from shared.service.commands import MAX_BATCH, Command, Happened
from shared.service.corrections import Void

DirectOrigin = Literal["station_visit", "residents_committee", "hospital"]
Items = Annotated[tuple[AidItem, ...], Field(min_length=1, max_length=50)]


class RequestAid(Command):
    """Open an aid request for a person in hardship."""

    person: PersonRef
    group: Group
    place: GivenPlace
    needs: Needs
    urgency: Urgency
    origin: DirectOrigin
    requested_at: Happened


class AssignAid(Command):
    """Hand a request to a social worker or volunteer."""

    request: Ref
    assignee: Assignee
    assigned_at: Happened


class RecordDelivery(Command):
    """Record one aid action done at the door: its items and the persons served."""

    request: Ref
    items: Items
    persons_served: Persons = 1
    delivered_at: Happened


class CancelAid(Command):
    """Close a request without a delivery, with the reason."""

    request: Ref
    reason: Cancellation
    cancelled_at: Happened


class OpenEmergency(Command):
    """Open an emergency case (sudden illness, fall) and the urgent request acting on it."""

    kind: EmergencyKind
    person: PersonRef
    group: Group
    place: GivenPlace
    needs: Needs = ("escort_to_hospital",)
    origin: DirectOrigin = "residents_committee"
    opened_at: Happened


class RecordDeliveries(Command):
    """Record a day's deliveries: all or nothing."""

    items: Annotated[list[RecordDelivery], Field(min_length=1, max_length=MAX_BATCH)]


class RequestAids(Command):
    """Open a day's aid requests (a station's visits, a committee's list): all or nothing."""

    items: Annotated[list[RequestAid], Field(min_length=1, max_length=MAX_BATCH)]


class AssignAids(Command):
    """Hand a day's requests to workers or volunteers: all or nothing."""

    items: Annotated[list[AssignAid], Field(min_length=1, max_length=MAX_BATCH)]


# -- corrections: a delivery voided, or voided and recorded again (application/corrections.py)


class VoidDelivery(Void):
    """Take a delivery recorded by mistake out of the figures, with the reason."""

    request: Ref
    delivery: Ref


class CorrectDelivery(RecordDelivery, Void):
    """The delivery as it really was, in place of what was recorded."""

    delivery: Ref


COMMANDS: dict[str, type[Command]] = {
    c.name(): c
    for c in (
        RequestAid,
        RequestAids,
        AssignAid,
        AssignAids,
        RecordDelivery,
        CancelAid,
        OpenEmergency,
        RecordDeliveries,
        VoidDelivery,
        CorrectDelivery,
    )
}
