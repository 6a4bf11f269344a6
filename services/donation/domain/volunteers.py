"""VolunteerLink: volunteer person-times (志愿者人次) linked to a station outside any campaign.
Each linking is its own stream: nothing to check against, nothing to race on. Volunteers
linked to a campaign go on the campaign's stream instead (see `Campaign.link_volunteers`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.contracts.donation import VolunteersLinked, VolunteersLinkVoided
from shared.contracts.envelope import Event
from shared.contracts.types import District
from shared.domain.aggregate import Aggregate, iso
from shared.domain.voids import restate


class VolunteerLink(Aggregate):
    kind = "volunteers"

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.volunteers = 0
        self.organisation = ""
        self.district: District | None = None
        self.station: str | None = None
        self.linked_at: datetime | None = None

    @classmethod
    def link(
        cls,
        id: str,
        volunteers: int,
        organisation: str,
        district: District,
        station: str,
        at: datetime,
    ) -> VolunteerLink:
        link = cls(id)
        link.record(
            VolunteersLinked(
                volunteers=volunteers, organisation=organisation, district=district, station=station
            ),
            at,
        )
        return link

    def apply(self, data: Event, at: datetime) -> None:
        match data:
            case VolunteersLinked():
                self.volunteers, self.organisation = data.volunteers, data.organisation
                self.district, self.station, self.linked_at = data.district, data.station, at
            case VolunteersLinkVoided():
                restate(self, data)

    def view(self) -> dict[str, Any]:
        return {
            "volunteers": self.id,
            "count": self.volunteers,
            "organisation": self.organisation,
            "district": self.district,
            "station": self.station,
            "campaign": None,
            "linked_at": iso(self.linked_at),
            "version": self.latest_version,
        }
