"""`kapok serve hotline` as an operator runs it: one process that provisions the stream,
serves HTTP and NATS, relays events, and stops cleanly on Ctrl-C."""

from __future__ import annotations

from pathlib import Path

import httpx
import nats
import orjson
import pytest
from harness import processes
from harness.processes import ADMIN
from harness.waits import free_port, until
from hotline_stories import at, call_body, place

from shared.bus.naming import Naming
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_serve_hotline_runs_http_nats_and_the_relay_then_stops_on_ctrl_c(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = processes.serve_env(settings, tmp_path)
    process = await processes.serve("hotline", env, tmp_path / "serve.log", port)
    base = f"http://127.0.0.1:{port}"
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    try:
        async with httpx.AsyncClient(base_url=base, headers=ADMIN) as client:
            await processes.until_answering(client, process)
            opened = await client.post(
                "/points", json={"place": place(), "opened_at": at(0).isoformat()}
            )
        assert opened.status_code == 201, opened.text
        point = opened.json()["point"]
        reply = await nc.request(
            naming.command_subject("hotline", "ReceiveCall"),
            orjson.dumps(call_body(point)),
            timeout=10,
            headers=ADMIN,
        )
        assert orjson.loads(reply.data)["status"] == 201

        js = nc.jetstream()

        async def both_published() -> bool:
            return (await js.stream_info(naming.stream("hotline"))).state.messages >= 2

        await until("the relay published both events", both_published, 10)
    finally:
        await nc.close()
        code = await processes.stop(process)
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert (tmp_path / "hotline.db").exists()
