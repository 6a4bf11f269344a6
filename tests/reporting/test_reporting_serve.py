"""`kapok serve reporting` and `kapok audit replay` as an operator and an auditor run them:
two processes that agree, until someone edits the live counters behind the fold's back."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from datetime import date
from pathlib import Path

import httpx
import orjson
from harness.processes import ADMIN, ADMIN_TOKEN, descendants, serve, serve_env, stop, until_gone
from harness.waits import free_port, until
from reporting_parts import producers
from reporting_stories import aid_delivered, aid_requested, at, call, funds_received

from shared.settings import Settings


async def until_ready(base: str, process: asyncio.subprocess.Process, expect: int) -> None:
    """Until /api/health says ready and the hotline checkpoint reached ``expect``."""
    async with httpx.AsyncClient(headers=ADMIN) as client:

        async def ready() -> bool:
            assert process.returncode is None, "kapok serve reporting exited"
            body = (await client.get(f"{base}/api/health")).json()
            return bool(body.get("ready") and body["streams"]["hotline"]["checkpoint"] >= expect)

        await until(f"kapok serve reporting ready at {expect}", ready, 30)


async def audit(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kapok.cli", "audit", "replay", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_audit_agrees_with_the_served_figures_until_the_counters_are_edited(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = serve_env(settings, tmp_path / "data")
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1 + i % 8)) for i in range(40)])
        await bus.record("aid", [aid_requested(1, at(2)), aid_delivered(1, at(3), persons=3)])
        await bus.record("donation", [funds_received(1, at(4), "136210.00")])
        process = await serve("reporting", env, tmp_path / "serve.log", port)
        try:
            await until_ready(base, process, 40)

            signed_in = {**env, "KAPOK_TOKEN": ADMIN_TOKEN}
            status, out, err = await audit(signed_in, "--as-of", "2020-03-07", "--url", base)
            assert status == 0, err
            assert "agrees on every figure" in err
            assert orjson.loads(out)["figures"]["aid_persons_served"] == 3

            # Someone adds a hundred calls to the live counters, not through events:
            with sqlite3.connect(tmp_path / "data" / "reporting.db") as db:
                db.execute(
                    "UPDATE reporting_counter_days SET value = value + 100 WHERE metric_id = "
                    "(SELECT id FROM reporting_metrics WHERE name = 'calls_received') AND day = ?",
                    ((date(2020, 3, 1) - date(1970, 1, 1)).days,),  # days since 1970
                )
            signed_in = {**env, "KAPOK_TOKEN": ADMIN_TOKEN}
            status, out, err = await audit(signed_in, "--as-of", "2020-03-07", "--url", base)
            assert status == 1
            assert "DIFFERENT services_given: replay 35 != live 135" in err
            assert "DIFFERENT calls_received: replay 35 != live 135" in err
        finally:
            assert await stop(process, 30) == 0


async def test_the_served_fold_hands_catching_up_to_its_worker_which_ends_with_the_service(
    settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = serve_env(settings, tmp_path / "data")
    async with producers(settings, tmp_path) as bus:
        # Given a backlog, whose first batch starts the worker,
        await bus.record("hotline", [call(i, at(1 + i % 8)) for i in range(300)])
        process = await serve("reporting", env, tmp_path / "serve.log", port)
        try:
            await until_ready(base, process, 300)
            workers = descendants(process.pid)
            assert workers, "no worker process was started for the backlog"
            await asyncio.sleep(2)  # it is ready well within this
            # when more arrives at once than a quiet stream brings,
            await bus.record("hotline", [call(i, at(2)) for i in range(300, 900)])
            await until_ready(base, process, 900)
            async with httpx.AsyncClient(headers=ADMIN) as client:
                health = (await client.get(f"{base}/api/health")).json()
                figures = (await client.get(f"{base}/api/report")).json()["figures"]
            # then the worker folded some of it, every call counted once,
            assert health["streams"]["hotline"]["prepared_elsewhere"] > 0
            assert figures["services_given"] == 900
        finally:
            # and a stopped service leaves no process behind.
            assert await stop(process, 30) == 0
    assert await until_gone(workers)
