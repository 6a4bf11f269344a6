"""Two hotline instances on one database both take commands, and the rules hold across them
as within one: two instances ending the same shift at once store one end (optimistic
concurrency on the shared store), and an instance whose memory still has a point open
refuses a call there once the other instance has closed it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from cluster_parts import cluster, cluster_env, open_point, stored_count
from hotline_stories import WORKER, at, call_body

from shared.settings import Settings

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.postgres]
SHIFTS = 30


async def test_two_instances_share_one_store_and_its_rules(
    settings: Settings, tmp_path: Path, postgres_url: str
) -> None:
    env = cluster_env(settings, tmp_path, postgres_url)
    async with cluster("hotline", env, tmp_path) as hotline:
        try:
            a, b = await hotline.start(), await hotline.start()
            async with (
                httpx.AsyncClient(base_url=a.url, timeout=30) as at_a,
                httpx.AsyncClient(base_url=b.url, timeout=30) as at_b,
            ):
                point = await open_point(a)
                shifts = []
                for n in range(SHIFTS):
                    started = {
                        "point": point,
                        "worker": f"{WORKER}-{n}",
                        "started_at": at(1).isoformat(),
                    }
                    answer = await (at_a if n % 2 else at_b).post("/shifts", json=started)
                    assert answer.status_code == 201, answer.text
                    shifts.append(answer.json()["shift"])

                # Each shift ended at both instances at the same moment.
                ended = {"ended_at": at(60).isoformat()}
                answers = await asyncio.gather(
                    *(
                        client.post(f"/shifts/{shift}/end", json=ended)
                        for shift in shifts
                        for client in (at_a, at_b)
                    )
                )
                codes = [r.status_code for r in answers]
                for n in range(SHIFTS):
                    pair = sorted(codes[2 * n : 2 * n + 2])
                    assert pair == [200, 409], [r.text for r in answers[2 * n : 2 * n + 2]]
                assert await stored_count(postgres_url, "ShiftEnded") == SHIFTS

                # a has the point open in memory (a call there read it)...
                taken = await at_a.post("/calls", json=call_body(point, minute=70))
                assert taken.status_code == 201, taken.text
                closed = await at_b.post(
                    f"/points/{point}/close",
                    json={"reason": "service_ended", "closed_at": at(80).isoformat()},
                )
                assert closed.status_code == 200, closed.text
                # ...and still refuses a call there once b has closed it.
                refused = await at_a.post("/calls", json=call_body(point, minute=90))
                assert refused.status_code == 409, refused.text
                assert await stored_count(postgres_url, "CallReceived") == 1
        except BaseException:
            print(hotline.logs())
            raise
