"""Person: that Kapok keeps someone's contact details, where they are served, and whether the
details were forgotten. The details themselves are not in its events (see `sealing`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contracts.envelope import Event
from shared.contracts.people import (
    ContactDetailsChanged,
    Forgetting,
    PersonForgotten,
    PersonRecorded,
)
from shared.contracts.types import Place
from shared.domain.aggregate import Aggregate, iso
from shared.domain.errors import NotFound, RuleBroken


class Person(Aggregate):
    kind = "person"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.place: Place | None = None
        self.recorded_at: datetime | None = None
        self.changed_at: datetime | None = None
        self.forgotten_at: datetime | None = None
        self.forgotten_because: Forgetting | None = None

    @property
    def forgotten(self) -> bool:
        return self.forgotten_at is not None

    @classmethod
    def recorded(cls, id: str, place: Place, at: datetime) -> Person:
        person = cls(id)
        person.record(PersonRecorded(person=id, place=place), at)
        return person

    def must_be_kept(self) -> None:
        if not self.exists:
            raise NotFound(self.id)
        if self.forgotten:
            raise RuleBroken(
                "person_forgotten",
                f"{self.id}'s details were forgotten ({self.forgotten_because}): "
                "record the person again under a new reference",
            )

    def change_details(self, at: datetime) -> None:
        self.must_be_kept()
        self.record(ContactDetailsChanged(person=self.id), at)

    def forget(self, reason: Forgetting, at: datetime) -> None:
        self.must_be_kept()
        self.record(PersonForgotten(person=self.id, reason=reason), at)

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case PersonRecorded():
                self.place, self.recorded_at = data.place, at
            case ContactDetailsChanged():
                self.changed_at = at
            case PersonForgotten():
                self.forgotten_at, self.forgotten_because = at, data.reason

    def view(self) -> dict[str, Any]:
        """The record without the details (what a command answers, and what the
        idempotency table keeps): the details are read with GET /people/{ref}."""
        return {
            "person": self.id,
            "place": self.place.model_dump() if self.place else None,
            "recorded_at": iso(self.recorded_at),
            "changed_at": iso(self.changed_at),
            "forgotten_at": iso(self.forgotten_at),
            "forgotten_because": self.forgotten_because,
            "version": self.latest_version,
        }
