"""What the people service learns from the hotline's and aid's events, event-driven (no call
between services): each kept person's last contact (retention counts from it: a referral, an
aid request, delivery or emergency naming them), which person each aid request serves, and
who is assigned to it (they may read that person's details).

The runner commits its checkpoint in the transaction the handler writes in, so a redelivery
changes nothing; every write is an upsert that a replay leaves as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import Any

from nats.aio.client import Client as NATS
from sqlalchemy.ext.asyncio import AsyncConnection

from services.people.adapters.contacts import assigned, contacted, requested
from shared.bus.naming import Naming
from shared.consumer import ConsumerRunner, Handler
from shared.contracts.aid import AidAssigned, AidDelivered, AidRequested, EmergencyCaseOpened
from shared.contracts.envelope import Envelope
from shared.contracts.hotline import ReferredToAid
from shared.eventstore import Database

CONSUMER = "people-contacts"
# The events that name a person and count as a contact, and the assignments. Not the calls
# and follow-ups: 400,000 of the scenario's 622,000 hotline events, which cost the people
# process about 30 CPU-seconds to decode (README, "Personal data") for the few people whose
# details are kept; a referral or an aid request, delivery or emergency is the contact that
# keeps details needed, and a station that changes a person's details renews them too.
NAMING = (
    ReferredToAid,
    AidRequested,
    AidDelivered,
    EmergencyCaseOpened,
)
EVENT_TYPES = [e.__name__ for e in (*NAMING, AidAssigned)]


def _person(data: Any) -> str | None:
    return getattr(data, "person", None)


def learn() -> Handler:
    async def handler(conn: AsyncConnection, batch: Sequence[Envelope[Any]]) -> None:
        latest: dict[str, int] = {}
        requests: dict[str, str] = {}
        assignments: list[tuple[str, str]] = []
        for envelope in batch:
            data = envelope.data
            if isinstance(data, AidAssigned):
                assignments.append((data.request, data.assignee))
                continue
            if isinstance(data, AidRequested):
                requests[data.request] = data.person
            person = _person(data)
            if person is None:
                continue
            at = int(envelope.occurred_at.astimezone(UTC).timestamp())
            if at > latest.get(person, -1):
                latest[person] = at
        await contacted(conn, latest)
        # Requests first: an assignment in the same batch finds its person.
        await requested(conn, requests)
        await assigned(conn, assignments)

    return handler


def contacts_runner(nc: NATS, db: Database, naming: Naming, **options: Any) -> ConsumerRunner:
    return ConsumerRunner(
        nc=nc,
        db=db,
        naming=naming,
        name=CONSUMER,
        sources=["hotline", "aid"],
        event_types=EVENT_TYPES,
        handler=learn(),
        **options,
    )
