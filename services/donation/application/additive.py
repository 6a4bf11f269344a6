"""Decisions that only add to a campaign, appended on its latest version.

Why: every station records into the same few campaigns at once (the warm lunches), and a
campaign is one stream, so with the version each request loaded, most of 32 concurrent
receipts to one campaign lost the race three times and heard 409. Nothing a concurrent event
can do makes an addition wrong: what it was checked against (the launch, its districts and
dates, the pledges) never changes once recorded, and distributions only ever need *more*
stock. So a receipt, a pledge, volunteers or an output is appended on top of whatever version
the campaign has once the store's lock is held. Distributions keep the version they decided
on: the stock they checked must still be the stock.

The toolkit builds a decision's appends before its guard runs and gives the guard no way to
change them, so `DonationService` builds them itself for an `Additive` decision and gives
the group commit a guard that re-bases that very list in place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.donation.adapters.cache import CachingLoader
from services.donation.domain import Campaign
from shared.contracts.envelope import Context
from shared.eventstore import Append
from shared.eventstore.schema import events
from shared.service.application import CommandService, Decision
from shared.service.replies import Reply


@dataclass(slots=True)
class Additive(Decision):
    """A decision whose events are valid on any later version of their aggregates."""


class DonationService(CommandService):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Campaigns are long streams: fold each once, then only what is new (adapters.cache).
        self.load = CachingLoader(self.store, (Campaign,))

    async def _commit(
        self, decision: Decision, ctx: Context, key: str | None, print_: str
    ) -> Reply:
        if not isinstance(decision, Additive):
            return await super()._commit(decision, ctx, key, print_)
        appends = [Append(a.id, a.version, a.pending) for a in decision.changed if a.pending]
        # As the toolkit's own commit does, where its Decision names a flow to continue.
        correlation = getattr(decision, "correlation_id", None)
        if correlation is not None:
            ctx = replace(ctx, correlation_id=correlation)

        async def on_latest_versions(conn: AsyncConnection) -> None:
            # Under the store's lock: no other writer can move these versions before commit.
            result = await conn.execute(
                select(events.c.stream_id, func.max(events.c.version))
                .where(events.c.stream_id.in_([a.stream_id for a in appends]))
                .group_by(events.c.stream_id)
            )
            latest = {str(stream): int(version) for stream, version in result}
            appends[:] = [
                Append(a.stream_id, latest.get(a.stream_id, 0), a.events) for a in appends
            ]

        reply = Reply(decision.status, orjson.dumps(decision.body))
        return await self.writer.commit(appends, on_latest_versions, reply, ctx, key, print_)
