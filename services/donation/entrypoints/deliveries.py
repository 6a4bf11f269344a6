"""Aid deliveries draw their goods from the campaigns they name, exactly once.

The consumer runner (`shared.consumer`) delivers the AID stream's AidDelivered events and
commits its checkpoint in the transaction the handler is given: the handler appends each
campaign's GoodsDistributed (and any StockShortfallRecorded) into the donation store *in
that transaction*, so the draw and "this delivery was handled" commit together or not at
all. Redelivery, duplicates and restarts are skipped by the checkpoint; beyond that, a
campaign remembers the deliveries that drew on it, so even a lost checkpoint (a restored
database) draws nothing twice.

The delivery already happened, so it is never refused: a short stock is drawn to zero and
the rest recorded as StockShortfallRecorded for reporting and operations to see. Each event
keeps the AidDelivered as its causation and the delivery's correlation id.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from nats.aio.client import Client as NATS
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.donation.domain import Campaign
from shared.bus.naming import Naming
from shared.consumer import ConsumerRunner, Handler
from shared.contracts.aid import AidDelivered
from shared.contracts.envelope import Context, Envelope
from shared.contracts.types import AidItem
from shared.eventstore import Append, EventStore
from shared.eventstore.schema import events, log_head

log = logging.getLogger("kapok.donation.deliveries")

CONSUMER = "donation-deliveries"
ACTOR = "service:donation"


async def _load_in(
    conn: AsyncConnection, store: EventStore, ids: Sequence[str]
) -> dict[str, Campaign]:
    """Campaigns rebuilt on the handler's own connection: after the head lock, so no command
    can change them before this transaction commits (a stale version here would be a retry
    and, after the runner's retries, a dead letter for a delivery that did happen)."""
    histories: dict[str, list[Envelope[Any]]] = {i: [] for i in ids}
    result = await conn.execute(
        select(events.c.body)
        .where(events.c.stream_id.in_(list(ids)))
        .order_by(events.c.stream_id, events.c.version)
    )
    for row in result:
        envelope = store.registry.decode(row[0])
        histories[envelope.stream_id].append(envelope)
    return {i: Campaign.rebuild(i, h) for i, h in histories.items()}


def draw_deliveries(store: EventStore) -> Handler:
    async def handler(conn: AsyncConnection, batch: Sequence[Envelope[Any]]) -> None:
        delivered = [e for e in batch if isinstance(e.data, AidDelivered)]
        named = sorted(
            {i.campaign for e in delivered for i in e.data.items if i.campaign is not None}
        )
        named = [i for i in named if Campaign.owns(i)]
        if not named:
            return
        # The lock every append takes, taken before reading: the campaigns read are the ones
        # appended on (SQLite's writer already holds its database; this is for PostgreSQL).
        await conn.execute(
            select(log_head.c.position).where(log_head.c.source == store.source).with_for_update()
        )
        campaigns = await _load_in(conn, store, named)
        for envelope in delivered:
            data: AidDelivered = envelope.data
            by_campaign: dict[str, list[AidItem]] = {}
            for item in data.items:
                if item.campaign is not None:
                    by_campaign.setdefault(item.campaign, []).append(item)
            appends: list[Append] = []
            for ref, items in sorted(by_campaign.items()):
                campaign = campaigns.get(ref)
                if campaign is None or not campaign.exists:
                    # Nothing to draw from and no campaign to tag a shortfall with: said loudly
                    # rather than dead-lettered, so the delivery's other campaigns still draw.
                    log.error("%s names unknown campaign %s: not drawn", data.delivery, ref)
                    continue
                if not campaign.draw(
                    data.delivery,
                    items,
                    data.persons_served,
                    data.place.district,
                    data.place.station,
                    data.group,
                    envelope.occurred_at,
                ):
                    log.info("%s already drew on %s: skipped", data.delivery, ref)
                    continue
                appends.append(Append(campaign.id, campaign.version, list(campaign.pending)))
            if not appends:
                continue
            ctx = Context(
                actor=ACTOR,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.event_id,
            )
            await store.append_in(conn, appends, ctx)
            # The next delivery in the batch decides on the state this one left.
            for append in appends:
                campaign = campaigns[append.stream_id]
                campaign.version += len(campaign.pending)
                campaign.pending.clear()

    return handler


def delivery_runner(nc: NATS, store: EventStore, naming: Naming, **options: Any) -> ConsumerRunner:
    """The runner on the donation database (the store's), so its checkpoint and the draws
    share one transaction."""
    return ConsumerRunner(
        nc=nc,
        db=store.db,
        naming=naming,
        name=CONSUMER,
        sources=["aid"],
        event_types=["AidDelivered"],
        handler=draw_deliveries(store),
        **options,
    )
