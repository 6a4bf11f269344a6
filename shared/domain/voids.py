"""Voiding a recorded fact, or correcting it (void and record again), as every service's
aggregates decide it: the void is a new event on the aggregate's stream
(`shared.contracts.corrections`), and the aggregate is restated as if the voided events had
never been recorded, or the replacement recorded in their place.

A fact is a whole aggregate (a call, a shift: its reference is the stream's) or one thing
inside one (a receipt in a campaign's stream). Voiding a fact already voided is refused
(409); a fact never recorded is not found (404).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from shared.contracts.corrections import Recorded, Voiding
from shared.contracts.envelope import Event, NewEvent
from shared.domain.aggregate import Aggregate
from shared.domain.errors import NotFound, RuleBroken

VOIDS_ONCE = "a_fact_is_voided_once"


def void(
    aggregate: Aggregate,
    kind: type[Voiding],
    fact: str,
    belongs: Callable[[Event], bool],
    reason: str,
    at: datetime,
    replacement: Sequence[NewEvent] = (),
    **fields: Any,
) -> None:
    """Record ``kind`` voiding ``fact`` (its events on ``aggregate`` are those ``belongs``
    says are its), with ``replacement`` recorded in their place if given, at ``at``."""
    if fact in aggregate.voided:
        raise RuleBroken(VOIDS_ONCE, f"{fact} was already voided ({aggregate.voided[fact]})")
    aggregate.must_exist()
    standing = tuple(
        Recorded(at=when, event=data) for data, when in aggregate.history if belongs(data)
    )
    if not standing:
        raise NotFound(fact)
    if at < standing[0].at:  # a time-order refusal: a rule, as everywhere
        raise RuleBroken(
            "void_follows_its_fact", f"{fact} happened at {standing[0].at.isoformat()}"
        )
    aggregate.record(
        kind(
            **{kind.fact_field: fact},
            **fields,
            reason=reason,
            voided=standing,
            replacement=tuple(Recorded(at=new.occurred_at, event=new.data) for new in replacement),
        ),
        at,
    )


def restate(aggregate: Aggregate, void: Voiding) -> None:
    """``aggregate`` as if the events ``void`` takes out had never been recorded and its
    replacement had, where they were: rebuilt from its history, keeping its version, pending
    events and flow. A whole aggregate voided with nothing in its place takes no more
    changes (`Aggregate.must_exist` refuses them)."""
    taken = [(record.event, record.at) for record in void.voided]
    fresh = type(aggregate)(aggregate.id)
    for data, at in aggregate.history:
        if (data, at) in taken:
            taken.remove((data, at))
            if not taken:
                for record in void.replacement:
                    fresh.history.append((record.event, record.at))
                    fresh.apply(record.event, record.at)
        elif data is not void:
            fresh.history.append((data, at))
            fresh.apply(data, at)
    fresh.voided = dict(aggregate.voided)
    fresh.was_at = aggregate.where()
    if not void.replacement:
        fresh.voided[void.fact] = void.reason
    kept = {"version", "pending", "correlation_id"}
    for name, value in vars(fresh).items():
        if name not in kept:
            setattr(aggregate, name, value)


def without(aggregate: Aggregate, belongs: Callable[[Event], bool]) -> Aggregate:
    """A copy of ``aggregate`` as if the events ``belongs`` picks had never been recorded:
    what a correction's replacement is decided on, by the same rules as a record."""
    fresh = type(aggregate)(aggregate.id)
    for data, at in aggregate.history:
        if not belongs(data):
            fresh.history.append((data, at))
            fresh.apply(data, at)
    fresh.version, fresh.voided = aggregate.version, dict(aggregate.voided)
    return fresh


def voided_view(aggregate: Aggregate) -> dict[str, Any]:
    """What is left to show of a whole aggregate voided with nothing in its place (a call, a
    shift, …): its reference, the reason and its version; its fields left with its events."""
    return {
        aggregate.kind: aggregate.id,
        "voided": aggregate.voided[aggregate.id],
        "version": aggregate.latest_version,
    }
