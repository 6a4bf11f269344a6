"""`kapok serve aid` as an operator runs it: one process that provisions the streams, serves
HTTP and NATS, relays events, turns hotline referrals into requests, and stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import nats
import orjson
import pytest
from aid_stories import NANZHOU, WEI_YI, at, request_body
from harness import databases

from services.aid.domain import request_id_for_referral
from shared.bus.naming import Naming
from shared.contracts.envelope import Context, NewEvent
from shared.contracts.hotline import ReferredToAid
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay
from shared.runtime import provision
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for(what: str, check: object, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if await check():  # type: ignore[operator]
                return
        except (httpx.TransportError, nats.errors.Error):
            pass
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what} within {seconds} s")


async def test_serve_aid_runs_http_nats_the_relay_and_the_referral_consumer(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAPOK_NATS_URL": settings.nats_url,
        "KAPOK_DATA_DIR": str(tmp_path),
        "KAPOK_SUBJECT_ROOT": settings.subject_root,
        "KAPOK_STREAM_PREFIX": settings.stream_prefix,
    }
    env.pop("KAPOK_DATABASE_URL", None)
    log = (tmp_path / "serve.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "kapok.cli", "serve", "aid", "--port", str(port)),
        env=env,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    hotline = EventStore(Database(databases.sqlite_url(tmp_path / "hotline")), "hotline")
    await hotline.setup()
    try:
        async with httpx.AsyncClient(base_url=base) as client:

            async def answers() -> bool:
                assert process.returncode is None, "kapok serve exited during start-up"
                return (await client.get("/openapi.json")).status_code == 200

            await wait_for("kapok serve answered HTTP", answers)
            opened = await client.post("/requests", json=request_body())
            assert opened.status_code == 201, opened.text

            reply = await nc.request(
                naming.command_subject("aid", "RequestAid"),
                orjson.dumps(request_body(1)),
                timeout=10,
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

            await wait_for("the referral became a request", opened_from_referral)

        js = nc.jetstream()

        async def relayed() -> bool:
            return (await js.stream_info(naming.stream("aid"))).state.messages == 3

        await wait_for("the relay published the three requests", relayed, 10)
    finally:
        await nc.close()
        await hotline.db.dispose()
        process.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(process.wait(), 20)
        finally:
            if process.returncode is None:
                process.kill()
            log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert (tmp_path / "aid.db").exists()
