"""Corrections: a recorded fact voided, or voided and recorded again, by a new event in the
fact's own stream. History keeps both: nothing recorded is ever changed or removed.

Every void event (`CallVoided`, `AidDeliveryVoided`, …) carries the fact's events as they
were recorded (``voided``, each with its business time) and, for a correction, the events
recorded in their place (``replacement``). A reader needs nothing else: reporting takes the
voided events' counts off their own business days and adds the replacement's on theirs, so
its fold stays stateless where it was, and the audit replay folds a void the same way.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import AwareDatetime, Field

from shared.contracts.envelope import Event
from shared.contracts.types import Contract

E = TypeVar("E", bound=Event)

REASON_MAX = 200
Reason = Annotated[
    str,
    Field(
        min_length=1,
        max_length=REASON_MAX,
        strict=True,
        description="why, in a coordinator's words, e.g. 'logged twice'; never a person's details",
    ),
]
"""The one free text a void carries: short, and read by auditors next to the figures."""


class Recorded(Contract, Generic[E]):
    """One event of a fact as it was recorded: its payload and its business time."""

    at: AwareDatetime = Field(description="the envelope's occurred_at when it was recorded")
    event: E


class Voiding(Event):
    """What every void event has: the reason, the fact's events taken out (``voided``) and
    any recorded in their place (``replacement``, a correction). Each subclass names its
    fact's field (``fact_field``) and narrows both to its fact's event types."""

    fact_field: ClassVar[str]
    reason: Reason
    voided: tuple[Recorded[Any], ...]
    replacement: tuple[Recorded[Any], ...] = ()

    @property
    def fact(self) -> str:
        """The reference of the fact voided (a call, a receipt, …)."""
        return str(getattr(self, self.fact_field))
