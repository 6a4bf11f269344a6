"""EmergencyCase: a sudden illness or a fall (突发重病、摔伤) that needs urgent action. Opening
one opens the aid request that acts on it, urgency "emergency", in the same decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.aid.domain.request import AidRequest
from shared.contracts.aid import EmergencyCaseOpened, EmergencyKind, Origin
from shared.contracts.envelope import Event
from shared.contracts.types import Group, Need, Place
from shared.domain.aggregate import Aggregate, iso


class EmergencyCase(Aggregate):
    kind = "emergency"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.request = ""
        self.case_kind: EmergencyKind | None = None
        self.person = ""
        self.group: Group | None = None
        self.place: Place | None = None
        self.opened_at: datetime | None = None

    @classmethod
    def open(
        cls,
        id: str,
        request_id: str,
        kind: EmergencyKind,
        person: str,
        group: Group,
        place: Place,
        needs: tuple[Need, ...],
        origin: Origin,
        at: datetime,
    ) -> tuple[EmergencyCase, AidRequest]:
        """The case and the request it creates, to be appended together."""
        request = AidRequest.request(
            request_id, person, group, place, needs, "emergency", origin, at
        )
        case = cls(id)
        case.record(
            EmergencyCaseOpened(
                case=id, request=request_id, kind=kind, person=person, group=group, place=place
            ),
            at,
        )
        return case, request

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case EmergencyCaseOpened():
                self.request, self.case_kind = data.request, data.kind
                self.person, self.group, self.place = data.person, data.group, data.place
                self.opened_at = at

    def view(self) -> dict[str, Any]:
        return {
            "emergency": self.id,
            "kind": self.case_kind,
            "request": self.request,
            "person": self.person,
            "group": self.group,
            "place": self.place.model_dump() if self.place else None,
            "opened_at": iso(self.opened_at),
            "version": self.latest_version,
        }
