"""The donation delivery consumer as a process of its own, so a test can kill it for real
(SIGKILL: no clean-up, a batch's transaction cut off wherever it was).

    python consumer_process.py <nats_url> <subject_root> <stream_prefix> <database_url>

Each batch is slowed down inside its transaction, so the kill lands in one.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

import nats
from sqlalchemy.ext.asyncio import AsyncConnection

from services.donation.entrypoints.deliveries import CONSUMER, draw_deliveries
from shared.bus.naming import Naming
from shared.consumer import ConsumerRunner
from shared.contracts.envelope import Envelope
from shared.eventstore import Database, EventStore
from shared.settings import Settings


async def main(nats_url: str, root: str, prefix: str, database_url: str) -> None:
    settings = Settings(nats_url=nats_url, subject_root=root, stream_prefix=prefix)
    db = Database(database_url)
    handler = draw_deliveries(EventStore(db, "donation"))

    async def slow(conn: AsyncConnection, batch: Sequence[Envelope[Any]]) -> None:
        await handler(conn, batch)
        await asyncio.sleep(0.05)

    nc = await nats.connect(nats_url)
    runner = ConsumerRunner(
        nc=nc,
        db=db,
        naming=Naming.of(settings),
        name=CONSUMER,
        sources=["aid"],
        event_types=["AidDelivered"],
        handler=slow,
        batch=40,
    )
    await runner.run()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
