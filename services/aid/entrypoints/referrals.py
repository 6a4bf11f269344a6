"""Hotline referrals become aid requests, exactly once.

The consumer runner (`shared.consumer`) delivers the HOTLINE stream's ReferredToAid events and
commits its checkpoint in the transaction the handler is given: the handler appends each
AidRequested into the aid store *in that transaction*, so the request and "this referral was
handled" commit together or not at all. A redelivery, a duplicate or a restart half-way is
skipped by the checkpoint. Beyond that, the request's id is derived from the referral and a
referral whose request already exists is stepped over, so even a lost checkpoint (a restored
database) cannot open a second request.

Each request keeps the referral event as its causation and the call's correlation id, so an
auditor can follow 卫姨 from her call to her door.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client as NATS
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.aid.domain import AidRequest, request_id_for_referral
from shared.bus.naming import Naming
from shared.consumer import ConsumerRunner, Handler
from shared.contracts.envelope import Context, Envelope
from shared.contracts.hotline import ReferredToAid
from shared.eventstore import Append, EventStore
from shared.eventstore.schema import events

log = logging.getLogger("kapok.aid.referrals")

CONSUMER = "aid-referrals"
ACTOR = "service:aid"


def open_requests(store: EventStore) -> Handler:
    async def handler(conn: AsyncConnection, batch: Sequence[Envelope[Any]]) -> None:
        referred = [e for e in batch if isinstance(e.data, ReferredToAid)]
        if not referred:
            return
        ids = sorted({request_id_for_referral(e.data.referral) for e in referred})
        result = await conn.execute(
            select(events.c.stream_id).where(events.c.stream_id.in_(ids)).distinct()
        )
        opened = {str(row[0]) for row in result}
        for envelope in referred:
            request = AidRequest.from_referral(envelope.data, envelope.occurred_at)
            if request.id in opened:
                log.info("%s already opened %s: skipped", envelope.data.referral, request.id)
                continue
            ctx = Context(
                actor=ACTOR,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.event_id,
            )
            await store.append_in(conn, [Append(request.id, 0, request.pending)], ctx)
            opened.add(request.id)

    return handler


def referral_runner(nc: NATS, store: EventStore, naming: Naming, **options: Any) -> ConsumerRunner:
    """The runner on the aid database (the store's), so its checkpoint and the requests share
    one transaction."""
    return ConsumerRunner(
        nc=nc,
        db=store.db,
        naming=naming,
        name=CONSUMER,
        sources=["hotline"],
        event_types=["ReferredToAid"],
        handler=open_requests(store),
        **options,
    )
