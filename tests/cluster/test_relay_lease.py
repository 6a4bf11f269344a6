"""Two hotline instances on one database: both answer, one relay publishes. Killing the
instance whose relay publishes (kill -9, commands in flight, a chunk half sent) hands the
relay over to the other within seconds, and the stream is then the store: no gap, no
duplicate, no stranger."""

from __future__ import annotations

import logging
from pathlib import Path

import nats
import pytest
from cluster_parts import (
    Load,
    cluster,
    cluster_env,
    kills,
    open_point,
    stream_holds_store,
    summary,
    until_published,
)

from shared.bus.naming import Naming
from shared.settings import Settings

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.postgres]
log = logging.getLogger(__name__)


async def test_killing_the_relays_holder_hands_over_with_no_gap_and_no_duplicate(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    naming = Naming.of(settings)
    env = cluster_env(settings, tmp_path, postgres_url)
    nc = await nats.connect(settings.nats_url)
    async with cluster("hotline", env, tmp_path) as hotline:
        try:
            first = await hotline.start()
            await hotline.start()
            holder = await hotline.holder("relay")
            standing = next(i for i in hotline.alive if i is not holder)
            relay = (await standing.health())["relay"]
            assert relay["standing_by"] is True
            assert (await standing.health())["leases"]["relay"]["holder"] == holder.name
            load = Load(nc, naming, await open_point(first))
            times: list[float] = []
            for _ in range(kills()):
                await load.until_recorded(300)  # the relay busy publishing
                times.append(await hotline.kill_holder("relay"))
                await load.until_recorded(100)  # the survivor takes commands and publishes
                await hotline.start()  # the next stand-by
            await load.stop()
            await until_published(nc, naming, "hotline", postgres_url)
            length = await stream_holds_store(nc, naming, "hotline", postgres_url)
            assert length >= load.recorded + 1  # the point's event and every call answered
            for instance in hotline.alive:
                body = await instance.health()
                assert body["relay"]["stopped"] is None, body  # never StreamDiverged
            print(f"relay handover: {summary(times)}; {length} events")
            assert max(times) < 5, summary(times)
        except BaseException:
            print(hotline.logs())
            raise
        finally:
            await nc.close()
