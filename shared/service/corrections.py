"""What every void or correction command has: why, and when (`shared.domain.voids`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field

from shared.contracts.corrections import Reason
from shared.contracts.text import NoPersonalNumbers
from shared.domain.aggregate import Aggregate
from shared.domain.voids import voided_view
from shared.service.application import Decision
from shared.service.commands import Command, Happened


class Void(Command):
    """Take a recorded fact out of the figures, saying why. Its own events stay in history."""

    corrects = True
    reason: Annotated[Reason, NoPersonalNumbers]
    voided_at: Happened | None = Field(default=None, description="default: now")

    @property
    def at(self) -> datetime:
        return self.voided_at or datetime.now(UTC)


def voided(aggregate: Aggregate) -> Decision:
    """The answer to a void that took a whole aggregate out (a call, a shift, …): its
    reference, the reason and its version; its fields are gone with its events."""
    return Decision([aggregate], 200, voided_view(aggregate))
