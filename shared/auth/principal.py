"""Roles, what each may do, and where: pure rules, no I/O.

The association's work decides the roles. A station worker records for the points and
stations of their station and sees their station's records; a district coordinator does so
for every station of their district and may also void and correct; the association's
administrator may do everything, including managing who has access; an auditor reads
records, figures and who did what, and records nothing; ops watch metrics and health.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.domain.where import Where


class Role(StrEnum):
    STATION_WORKER = "station-worker"
    COORDINATOR = "coordinator"
    ADMINISTRATOR = "administrator"
    AUDITOR = "auditor"
    OPS = "ops"


class Permission(StrEnum):
    RECORD = "record"  # a command that records work
    CORRECT = "correct"  # a void or a correction
    READ_RECORDS = "read-records"  # one record's current state (GET /calls/{id}, …)
    READ_FIGURES = "read-figures"  # reports, counters, the dashboard's stream
    READ_REVISIONS = "read-revisions"  # who changed what: revisions, the audit trail
    WATCH = "watch"  # /metrics and health in detail


_ALL = frozenset(Permission)
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.STATION_WORKER: frozenset(
        {Permission.RECORD, Permission.READ_RECORDS, Permission.READ_FIGURES}
    ),
    Role.COORDINATOR: _ALL - {Permission.WATCH},
    Role.ADMINISTRATOR: _ALL,
    Role.AUDITOR: frozenset(
        {Permission.READ_RECORDS, Permission.READ_FIGURES, Permission.READ_REVISIONS}
    ),
    Role.OPS: frozenset({Permission.READ_FIGURES, Permission.WATCH}),
}

# The roles whose reach is bounded, and by what.
SCOPED = {Role.STATION_WORKER: "station", Role.COORDINATOR: "district"}


class Forbidden(Exception):
    """A signed-in principal asked for what their role or scope does not allow (403)."""

    def __init__(self, message: str, rule: str) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is signed in: the ``actor`` written on every event they record (``user:<id>``,
    or the ``worker:<ref>`` their token was issued to), their role, and their scope."""

    actor: str
    role: Role
    station: str | None = None  # a station worker's
    district: str | None = None  # a coordinator's

    def __post_init__(self) -> None:
        needed = SCOPED.get(self.role)
        if needed == "station" and not self.station:
            raise ValueError("a station worker's principal needs a station")
        if needed == "district" and not self.district:
            raise ValueError("a coordinator's principal needs a district")

    @property
    def scoped(self) -> bool:
        """Whether its reach is bounded (a station, a district): else every record is."""
        return self.role in SCOPED

    @property
    def scope(self) -> str:
        if self.role is Role.STATION_WORKER:
            return f"station {self.station}"
        if self.role is Role.COORDINATOR:
            return f"district {self.district}"
        return "everywhere"

    def may(self, permission: Permission) -> bool:
        return permission in GRANTS[self.role]

    def require(self, permission: Permission) -> None:
        if not self.may(permission):
            raise Forbidden(
                f"the {self.role} role may not {_VERBS[permission]}", f"role_may_not_{permission}"
            )

    def reaches(self, where: Where | None) -> bool:
        """Whether a thing at ``where`` (None: association-wide, no place) is within scope."""
        if self.role is Role.STATION_WORKER:
            return where is not None and where.station == self.station
        if self.role is Role.COORDINATOR:
            return (
                where is not None
                and bool(where.districts)
                and (set(where.districts) <= {self.district})
            )
        return True

    def require_reach(self, resource: str, where: Where | None) -> None:
        if not self.reaches(where):
            at = "the association as a whole" if where is None else where.describe()
            raise Forbidden(f"{resource} is at {at}: outside your {self.scope}", "outside_scope")


_VERBS = {
    Permission.RECORD: "record work",
    Permission.CORRECT: "void or correct records",
    Permission.READ_RECORDS: "read records",
    Permission.READ_FIGURES: "read figures",
    Permission.READ_REVISIONS: "read revisions or the audit trail",
    Permission.WATCH: "read metrics or detailed health",
}
