"""`kapok token` against real processes: a token issued on the command line signs in at
every service at once, is kept only as a hash, and a revocation or an expiry holds
everywhere within the bucket's watch (milliseconds), with no restart."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
import pytest
from harness.processes import ADMIN, serve, serve_env, stop, until_answering
from harness.waits import free_port

from shared.auth.registry import bucket_name
from shared.auth.tokens import split
from shared.bus.naming import Naming
from shared.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

NANZHOU = {
    "district": "haizhu",
    "street": "南洲街",
    "station": "station:nanzhou",
    "organisation": "org:haizhu-sw",
}
OPEN_POINT = {"place": NANZHOU, "opened_at": "2020-02-10T08:00:00+08:00"}


def kapok_token(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kapok.cli", "token", *args, "--nats", env["KAPOK_NATS_URL"]],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


async def test_a_token_from_the_command_line_signs_in_everywhere_until_revoked(
    settings: Settings, tmp_path: Path
) -> None:
    env = serve_env(settings, tmp_path / "data")
    ports = {"hotline": free_port(), "aid": free_port()}
    processes = {
        name: await serve(name, env, tmp_path / f"{name}.log", port) for name, port in ports.items()
    }
    try:
        clients = {
            name: httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
            for name, port in ports.items()
        }
        for name, client in clients.items():
            await until_answering(client, processes[name])

        # Given a station worker's token issued by the administrator on the command line,
        made = kapok_token(env, "create", "--role", "station-worker",
                           "--station", "station:nanzhou", "--actor", "worker:w17",
                           "--note", "Nanzhou evening shift")  # fmt: skip
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        token_id, secret = split(token)  # type: ignore[misc]
        signed_in = {"Authorization": f"Bearer {token}"}
        # it signs in at once at every service, within its station,
        opened = await clients["hotline"].post("/points", json=OPEN_POINT, headers=signed_in)
        assert opened.status_code == 201, opened.text
        aid_read = await clients["aid"].get("/requests/request:none", headers=signed_in)
        assert aid_read.status_code == 404  # signed in, allowed to read; nothing there
        # and the bus keeps its hash, never the token.
        listed = kapok_token(env, "list")
        assert token_id in listed.stdout and "station-worker" in listed.stdout
        assert secret not in listed.stdout + listed.stderr
        nc = await nats.connect(settings.nats_url)
        try:
            kv = await nc.jetstream().key_value(bucket_name(Naming.of(settings)))
            stored = (await kv.get(token_id)).value or b""
        finally:
            await nc.close()
        assert secret.encode() not in stored and b'"hash"' in stored

        # When the administrator revokes it,
        revoked = kapok_token(env, "revoke", token_id)
        assert revoked.returncode == 0, revoked.stderr
        gone = time.monotonic()
        # then every service refuses it within moments, without a restart.
        reads = {"hotline": f"/points/{opened.json()['point']}", "aid": "/requests/request:none"}
        for name, client in clients.items():
            while (answer := await client.get(reads[name], headers=signed_in)).status_code != 401:
                assert time.monotonic() - gone < 2.0, f"still {answer.status_code} after 2 s"
                await asyncio.sleep(0.005)
            assert "revoked" in answer.json()["error"]
        assert "revoked" in kapok_token(env, "list").stdout
        # The administrator's own token still signs in.
        assert (await clients["hotline"].get("/points/point:x", headers=ADMIN)).status_code == 404
    finally:
        for client in clients.values():
            await client.aclose()
        for process in processes.values():
            await stop(process)


async def test_an_expired_token_and_a_scope_it_lacks_are_refused(
    settings: Settings, tmp_path: Path
) -> None:
    env = serve_env(settings, tmp_path / "data")
    port = free_port()
    process = await serve("hotline", env, tmp_path / "hotline.log", port)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            await until_answering(client, process)
            expired = kapok_token(
                env, "create", "--role", "auditor", "--expires", "2020-01-01T00:00+08:00"
            )
            assert expired.returncode == 0, expired.stderr
            refused = await client.get(
                "/points/point:x", headers={"Authorization": f"Bearer {expired.stdout.strip()}"}
            )
            assert refused.status_code == 401 and "expired" in refused.json()["error"]

            nowhere = kapok_token(env, "create", "--role", "coordinator")
            assert nowhere.returncode != 0 and "--district" in nowhere.stderr
    finally:
        await stop(process)
