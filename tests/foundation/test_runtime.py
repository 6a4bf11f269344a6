"""A producer's foundation, started as a service starts it."""

from __future__ import annotations

import asyncio

from foundation_parts import calls

from shared.bus.naming import Naming
from shared.contracts import Context
from shared.runtime import Producer
from shared.settings import Settings


async def test_a_started_producer_publishes_what_it_stores(
    settings: Settings, naming: Naming
) -> None:
    async with await Producer.start(settings, "hotline") as producer:
        await producer.store.append_all(calls(0, 10), Context())
        async with asyncio.timeout(10):
            while producer.relay.stats.progress < 10:
                await asyncio.sleep(0.01)
        info = await producer.nc.jetstream().stream_info(naming.stream("hotline"))

        assert info.state.last_seq == 10 and producer.relay_running
    assert (settings.data_dir / "hotline.db").exists()
