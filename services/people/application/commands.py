"""The people service's commands. Those carrying details are taken over HTTPS-fronted HTTP
only, never over NATS (`COMMANDS` holds the others): no NATS message carries a name."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from shared.contracts.people import Forgetting
from shared.contracts.refs import PersonRef
from shared.contracts.types import GivenPlace, Ref
from shared.service.commands import MAX_BATCH, Command, Happened

Name = Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
Phone = Annotated[
    str, StringConstraints(min_length=3, max_length=32, pattern=r"^\+?[0-9][0-9 -]*[0-9]$")
]
Address = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class RecordPerson(Command):
    """Keep a person's contact details. ``person``: the reference the other services already
    use for them; omitted, Kapok issues one (the answer says which)."""

    person: PersonRef | None = None
    place: GivenPlace
    full_name: Name
    phone: Phone
    address: Address
    recorded_at: Happened


class ChangeContactDetails(Command):
    """Replace a kept person's contact details (all three: what is not sent is not kept)."""

    person: Ref
    full_name: Name
    phone: Phone
    address: Address
    changed_at: Happened


class ForgetPerson(Command):
    """Destroy a person's details (PIPL art. 47, or the retention's end)."""

    person: Ref
    reason: Forgetting = "request"


class ForgetPeople(Command):
    """Forget many at once, with one master-key rotation (retention's sweep: one rotation per
    person would re-wrap every kept key once per person forgotten). Not on any transport."""

    people: Annotated[list[Ref], Field(min_length=1, max_length=MAX_BATCH)]
    reason: Forgetting = "retention"


class RecordPeople(Command):
    """A day's people at once: all or nothing."""

    items: Annotated[list[RecordPerson], Field(min_length=1, max_length=MAX_BATCH)]


# Over NATS request-reply: only what carries no details.
COMMANDS: dict[str, type[Command]] = {ForgetPerson.name(): ForgetPerson}
