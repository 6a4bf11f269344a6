"""Two hotline instances on one database: both answer, one relay publishes. Killing the
instance whose relay publishes (kill -9, commands in flight, a chunk half sent) hands the
relay over to the other within seconds, and the stream is then the store: no gap, no
duplicate, no stranger."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import httpx
import nats
import orjson
import pytest
from cluster_parts import (
    Cluster,
    Load,
    cluster,
    cluster_env,
    kills,
    open_point,
    stream_holds_store,
    summary,
    until_published,
)
from harness import processes
from hotline_stories import call_body
from nats.aio.client import Client as NATS

from shared.bus.naming import Naming
from shared.service.commands import MAX_BATCH
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def kill_mid_chunk(
    hotline: Cluster, nc: NATS, naming: Naming, point: str
) -> tuple[str, float]:
    """A day's 5,000 calls recorded at the relay's holder, which is killed as soon as the
    stream has part of them: mid-chunk (the relay sends a chunk's messages in one write).
    Returns where the stream was when it was killed, and the seconds until another took the
    relay over."""
    holder = await hotline.holder("relay")
    js = nc.jetstream()
    stream = naming.stream("hotline")
    before = (await js.stream_info(stream)).state.last_seq
    batch = orjson.dumps({"items": [call_body(point)] * MAX_BATCH})
    async with httpx.AsyncClient(base_url=holder.url, timeout=60) as client:
        posted = asyncio.create_task(client.post("/calls:batch", content=batch))
        seen = before
        async with asyncio.timeout(30):
            while seen <= before + 200:  # past the calls in flight: into the batch's chunk
                seen = (await js.stream_info(stream)).state.last_seq
        seconds = await hotline.kill_holder("relay")
        with contextlib.suppress(httpx.HTTPError):
            await posted
    return f"killed at {seen - before} messages after {before}", seconds


@pytest.mark.postgres
async def test_killing_the_relays_holder_hands_over_with_no_gap_and_no_duplicate(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    env = cluster_env(settings, tmp_path, postgres_url)
    await relay_story(settings, tmp_path, env, postgres_url)


async def test_on_sqlite_the_relays_lease_is_a_file_lock_and_hands_over_as_well(
    settings: Settings, tmp_path: Path
) -> None:
    env = processes.serve_env(settings, tmp_path) | {"KAPOK_AUTH": "0"}
    # No KAPOK_DATABASE_URL: both open <data dir>/hotline.db, the lease a flock beside it.
    await relay_story(settings, tmp_path, env, settings.database_url_for("hotline"))


async def relay_story(
    settings: Settings, tmp_path: Path, env: dict[str, str], database_url: str
) -> None:
    naming = Naming.of(settings)
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
            load = Load(nc, naming, point := await open_point(first))
            times: list[float] = []
            for _ in range(kills()):
                await load.until_recorded(200)  # the relay busy publishing
                times.append(await hotline.kill_holder("relay"))
                await load.until_recorded(50)  # the survivor takes commands and publishes
                await hotline.start()  # the next stand-by
            caught = await kill_mid_chunk(hotline, nc, naming, point)
            await load.stop()
            await until_published(nc, naming, "hotline", database_url)
            length = await stream_holds_store(nc, naming, "hotline", database_url)
            assert length >= load.recorded + 1  # the point's event and every call answered
            for instance in hotline.alive:
                body = await instance.health()
                assert body["relay"]["stopped"] is None, body  # never StreamDiverged
            kind = database_url.split(":")[0]
            said = f"{summary(times)}; {length} events; mid-chunk: {caught}"
            print(f"relay handover ({kind}): {said}")
            assert max(times) < 5, summary(times)
            assert caught[1] < 5, caught
        except BaseException:
            print(hotline.logs())
            raise
        finally:
            await nc.close()
