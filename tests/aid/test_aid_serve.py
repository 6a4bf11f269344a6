"""`kapok serve aid` as an operator runs it: one process that provisions the streams, serves
HTTP and NATS, relays events, turns hotline referrals into requests, and stops on Ctrl-C."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import nats
import orjson
import pytest
from aid_stories import NANZHOU, WEI_YI, at, request_body
from harness import parts, processes
from harness.processes import ADMIN
from sqlalchemy import func, select

from services.aid.domain import request_id_for_referral
from services.aid.entrypoints.referrals import CONSUMER
from shared.bus.naming import Naming
from shared.contracts.envelope import Context, NewEvent
from shared.contracts.hotline import ReferredToAid
from shared.eventstore import Append, Database
from shared.eventstore.schema import events
from shared.relay import OutboxRelay
from shared.runtime import provision
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_serve_aid_runs_http_nats_the_relay_and_the_referral_consumer(
    settings: Settings, tmp_path: Path
) -> None:
    port = processes.free_port()
    env = processes.serve_env(settings, tmp_path)
    process = await processes.serve("aid", env, tmp_path / "serve.log", port)
    base = f"http://127.0.0.1:{port}"
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    hotline = await parts.sqlite_store(tmp_path, "hotline")
    try:
        async with httpx.AsyncClient(base_url=base, headers=ADMIN) as client:
            await processes.until_answering(client, process)
            opened = await client.post("/requests", json=request_body())
            assert opened.status_code == 201, opened.text

            reply = await nc.request(
                naming.command_subject("aid", "RequestAid"),
                orjson.dumps(request_body(1)),
                timeout=10,
                headers=ADMIN,
            )
            assert orjson.loads(reply.data)["status"] == 201

            await provision(nc, settings)
            referral = ReferredToAid(
                referral="referral:serve",
                call="call:serve",
                point="point:nanzhou-1",
                person=WEI_YI,
                group="disabled",
                place=NANZHOU,
                needs=("medicine",),
                urgency="today",
            )
            await hotline.append(
                "referral:serve", 0, [NewEvent(referral, at(10))], Context("worker:w17")
            )
            await OutboxRelay(hotline, nc, naming).publish_pending()
            request = request_id_for_referral("referral:serve")

            async def opened_from_referral() -> bool:
                return (await client.get(f"/requests/{request}")).status_code == 200

            await processes.wait_for("the referral became a request", opened_from_referral)

        js = nc.jetstream()

        async def relayed() -> bool:
            return (await js.stream_info(naming.stream("aid"))).state.messages == 3

        await processes.wait_for("the relay published the three requests", relayed, 10)
    finally:
        await nc.close()
        await hotline.db.dispose()
        code = await processes.stop(process)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert (tmp_path / "aid.db").exists()


async def test_aid_killed_hard_mid_way_through_referrals_opens_each_request_once(
    settings: Settings, tmp_path: Path
) -> None:
    """SIGKILL, not a clean stop: whatever the consumer had not committed is redelivered to
    the restarted process and applied once; what it had committed is skipped."""
    env = processes.serve_env(settings, tmp_path)
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    await provision(nc, settings)
    hotline = await parts.sqlite_store(tmp_path, "hotline")
    count = 4000
    for first in range(0, count, 500):
        await hotline.append_all(
            [
                Append(
                    f"referral:k{n}",
                    0,
                    [
                        NewEvent(
                            ReferredToAid(
                                referral=f"referral:k{n}",
                                call=f"call:k{n}",
                                point="point:nanzhou-1",
                                person=f"person:k{n}",
                                group="elderly_alone",
                                place=NANZHOU,
                                needs=("food",),
                                urgency="within_days",
                            ),
                            at(10),
                        )
                    ],
                )
                for n in range(first, first + 500)
            ],
            Context("worker:w17"),
        )
    js = nc.jetstream()
    aid_stream = naming.stream("aid")

    async def requests_on_the_bus() -> int:
        return int((await js.stream_info(aid_stream)).state.messages)

    first_run = await processes.serve("aid", env, tmp_path / "first.log")
    second_run: asyncio.subprocess.Process | None = None
    try:
        await OutboxRelay(hotline, nc, naming).publish_pending()

        async def some_opened() -> bool:
            return await requests_on_the_bus() > 0

        await processes.wait_for("the first requests reached the AID stream", some_opened, 60)
        first_run.kill()  # SIGKILL: no clean-up, a batch's transaction cut short
        await first_run.wait()
        aid_db = Database(f"sqlite+aiosqlite:///{tmp_path / 'aid.db'}")
        try:
            async with aid_db.read() as conn:
                committed = await conn.scalar(
                    select(func.count()).where(events.c.type == "AidRequested")
                )
        finally:
            await aid_db.dispose()
        # Killed with the consumer part-way: some requests committed, not all.
        assert 0 < committed < count, committed

        second_run = await processes.serve("aid", env, tmp_path / "second.log")

        async def all_opened() -> bool:
            return await requests_on_the_bus() >= count

        await processes.wait_for("every referral reached the AID stream", all_opened, 90)
        hotline_last = (await js.stream_info(naming.stream("hotline"))).state.last_seq

        async def settled() -> bool:
            # The second run acknowledged every referral (its requests commit first), and
            # the bus holds every request its store holds: a second request per referral
            # would be on the bus by now.
            info = await js.consumer_info(naming.stream("hotline"), CONSUMER)
            acked = info.ack_floor.stream_seq if info.ack_floor else 0
            return acked >= hotline_last and await requests_on_the_bus() == await stored()

        async def stored() -> int:
            aid = Database(f"sqlite+aiosqlite:///{tmp_path / 'aid.db'}")
            try:
                async with aid.read() as conn:
                    return int(await conn.scalar(select(func.count()).select_from(events)))
            finally:
                await aid.dispose()

        await processes.wait_for("every referral acknowledged, every request relayed", settled)
        assert await requests_on_the_bus() == count
        referrals = set()
        for seq in range(1, count + 1):
            body = orjson.loads((await js.get_msg(aid_stream, seq)).data)
            assert body["type"] == "AidRequested"
            assert body["stream_id"] == request_id_for_referral(body["data"]["referral"])
            referrals.add(body["data"]["referral"])
        assert referrals == {f"referral:k{n}" for n in range(count)}
    finally:
        await nc.close()
        await hotline.db.dispose()
        for process in (first_run, second_run):
            if process is not None:
                await processes.stop(process)
