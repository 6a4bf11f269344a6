"""Two reporting instances on one database: one folds, the other stands by and serves the
same counters. Killing the one that folds (kill -9, batches in flight) hands the fold over
within seconds, and the counters then equal what the hotline recorded: nothing lost, nothing
counted twice."""

from __future__ import annotations

from pathlib import Path

import httpx
import nats
import pytest
from cluster_parts import (
    Instance,
    Load,
    cluster,
    cluster_env,
    kills,
    open_point,
    stored_count,
    summary,
    until_published,
)
from harness.waits import until

from kapok.status import service_row
from shared.bus.naming import Naming
from shared.settings import Settings

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.postgres]


async def calls_counted(instance: Instance) -> int:
    async with httpx.AsyncClient(base_url=instance.url, timeout=5) as client:
        answer = await client.get("/api/counters", params={"metric": "calls_received"})
    assert answer.status_code == 200, answer.text
    return sum(row["value"] for row in answer.json()["counters"])


async def test_killing_the_folding_reporting_instance_hands_over_and_counts_each_call_once(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    naming = Naming.of(settings)
    env = cluster_env(settings, tmp_path, postgres_url)
    nc = await nats.connect(settings.nats_url)
    async with (
        cluster("hotline", env, tmp_path) as hotline,
        cluster("reporting", env, tmp_path) as reporting,
    ):
        try:
            producer = await hotline.start()
            load = Load(nc, naming, await open_point(producer), concurrency=8)
            await reporting.start()
            await reporting.start()
            folding = await reporting.holder("fold")
            standing = next(i for i in reporting.alive if i is not folding)
            await load.until_recorded(200)
            # The stand-by serves the counters the folding one writes.
            assert await calls_counted(standing) > 0
            body = await standing.health()
            assert body["instance"] == standing.name
            assert body["leases"]["fold"] == {**body["leases"]["fold"], "held": False}
            assert body["leases"]["fold"]["holder"] == folding.name
            # It stands by, and says so: not "degraded … diverges after position 0".
            assert body["status"] == "ok" and body["problems"] == [], body
            assert all(s["standing_by"] for s in body["streams"].values()), body
            folds = (await folding.health())["streams"]
            assert not any(s["standing_by"] for s in folds.values()), folds
            row = await service_row("reporting", standing.port, standing.process.pid)
            assert f"fold standing by ({folding.name} holds it)" in row.detail  # kapok status
            for instance, held in ((folding, 1), (standing, 0)):
                async with httpx.AsyncClient(base_url=instance.url, timeout=5) as client:
                    metrics = (await client.get("/metrics")).text
                assert f'kapok_reporting_lease_held{{lease="fold"}} {held}' in metrics
            times: list[float] = []
            for _ in range(kills()):
                await load.until_recorded(200)  # batches folding as it is killed
                times.append(await reporting.kill_holder("fold"))
                await load.until_recorded(50)
                await reporting.start()  # the next stand-by
            await load.stop()
            await until_published(nc, naming, "hotline", postgres_url)
            recorded = await stored_count(postgres_url, "CallReceived")
            assert recorded >= load.recorded

            async def all_counted() -> bool:
                return await calls_counted(reporting.alive[0]) >= recorded

            await until("every call counted", all_counted, 30)
            for instance in reporting.alive:
                assert await calls_counted(instance) == recorded  # once each, not twice
                body = await instance.health()
                moved = [s["checkpoint_moved"] for s in body["streams"].values()]
                assert moved == [None, None, None], body
            print(f"reporting handover: {summary(times)}; {recorded} calls counted")
            assert max(times) < 5, summary(times)
        except BaseException:
            print(hotline.logs(), reporting.logs())
            raise
        finally:
            await nc.close()
