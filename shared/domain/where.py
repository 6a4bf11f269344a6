"""Where a record is: its district(s) and station, what a principal's scope is measured
against (`shared.auth.principal`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Where:
    districts: tuple[str, ...]  # one for a place; a campaign may run in several
    station: str | None = None

    def describe(self) -> str:
        station = f"station {self.station}, " if self.station else ""
        return f"{station}district {', '.join(self.districts) or 'none'}"
