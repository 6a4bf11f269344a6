"""`kapok serve hotline` as an operator runs it: one process that provisions the stream,
serves HTTP and NATS, relays events, and stops cleanly on Ctrl-C."""

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
from hotline_stories import at, call_body, place

from shared.bus.naming import Naming
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_for_http(base: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            assert process.returncode is None, "kapok serve exited during start-up"
            try:
                await client.get(f"{base}/openapi.json")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    raise AssertionError("kapok serve did not answer HTTP within 30 s")


async def test_serve_hotline_runs_http_nats_and_the_relay_then_stops_on_ctrl_c(
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
        *(sys.executable, "-m", "kapok.cli", "serve", "hotline", "--port", str(port)),
        env=env,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    naming = Naming.of(settings)
    nc = await nats.connect(settings.nats_url)
    try:
        await wait_for_http(base, process)
        async with httpx.AsyncClient(base_url=base) as client:
            opened = await client.post(
                "/points", json={"place": place(), "opened_at": at(0).isoformat()}
            )
        assert opened.status_code == 201, opened.text
        point = opened.json()["point"]
        reply = await nc.request(
            naming.command_subject("hotline", "ReceiveCall"),
            orjson.dumps(call_body(point)),
            timeout=10,
        )
        assert orjson.loads(reply.data)["status"] == 201

        js = nc.jetstream()
        deadline = time.monotonic() + 10
        while (await js.stream_info(naming.stream("hotline"))).state.messages < 2:
            assert time.monotonic() < deadline, "the relay did not publish within 10 s"
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
        process.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(process.wait(), 20)
        finally:
            if process.returncode is None:
                process.kill()
            log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()
    assert (tmp_path / "hotline.db").exists()
