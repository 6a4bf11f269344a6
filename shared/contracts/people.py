"""Events of the people service: that a person's contact details are kept, changed or
forgotten, and never the details themselves.

A person's name, phone and address live only in the people service's database, encrypted
with a key of the person's own (services/people/README.md). What crosses the bus is the
opaque reference every other service already uses (``person:…``) and the station that serves
the person, which a station worker's scope is measured against.
"""

from __future__ import annotations

from typing import Literal

from shared.contracts.envelope import Event
from shared.contracts.registry import event
from shared.contracts.types import Place, Ref

Forgetting = Literal["request", "retention"]
"""Why details were forgotten: the person asked (PIPL art. 47), or the retention ran out."""


class PeopleEvent(Event):
    source = "people"


@event
class PersonRecorded(PeopleEvent):
    """Contact details of a person were recorded (encrypted, in the people service only)."""

    person: Ref
    place: Place


@event
class ContactDetailsChanged(PeopleEvent):
    """A person's contact details were changed; which of them is not said."""

    person: Ref


@event
class PersonForgotten(PeopleEvent):
    """A person's details were destroyed: their data key is gone, every copy unreadable. The
    reference stays, so every count that names it stays as it was."""

    person: Ref
    reason: Forgetting
