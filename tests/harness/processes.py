"""`kapok serve <service>` as a process of its own, as an operator runs it: on the test's
nats-server, subject root and stream prefix, its data in a directory of the test's, stopped
with Ctrl-C (SIGINT) or killed outright."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import httpx

from bench.procs import family
from harness.waits import free_port, until
from shared.settings import Settings

wait_for = until  # the name these stories first knew it by (harness/waits.py)


def serve_env(settings: Settings, data_dir: Path) -> dict[str, str]:
    """This environment, with ``settings``' NATS, subject root and stream prefix, data in
    ``data_dir``, and no KAPOK_DATABASE_URL (so each service opens its SQLite file there)."""
    env = {
        **os.environ,
        "KAPOK_NATS_URL": settings.nats_url,
        "KAPOK_DATA_DIR": str(data_dir),
        "KAPOK_SUBJECT_ROOT": settings.subject_root,
        "KAPOK_STREAM_PREFIX": settings.stream_prefix,
    }
    env.pop("KAPOK_DATABASE_URL", None)
    return env


# An administrator's token every served process of a test knows (registered in the token
# bucket of the test's bus by `serve`): what `ADMIN`, the headers, sign in with.
ADMIN_TOKEN = "kapok_harnessadmin_" + "t" * 43
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def register_admin(env: dict[str, str]) -> None:
    """`ADMIN_TOKEN` in the token bucket of the bus ``env`` names, as `kapok token` would."""
    from kapok.tokens import register

    await register(env, ADMIN_TOKEN, "tests/harness")


async def serve(
    service: str, env: dict[str, str], log: Path, port: int | None = None
) -> asyncio.subprocess.Process:
    """`kapok serve <service> --port <port>` (a free port if none), stdout and stderr to ``log``;
    `ADMIN` signs in to it."""
    port = free_port() if port is None else port
    if env.get("KAPOK_AUTH", "1") != "0":
        await register_admin(env)
    with log.open("wb") as out:  # the child has its own descriptor
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "kapok.cli", "serve", service, "--port", str(port)),
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )


async def stop(process: asyncio.subprocess.Process, seconds: float = 20) -> int:
    """Ctrl-C, then its exit code once it has exited within ``seconds``; killed if it has not
    (and the TimeoutError raised)."""
    if process.returncode is not None:
        return process.returncode
    process.send_signal(signal.SIGINT)
    try:
        return await asyncio.wait_for(process.wait(), seconds)
    finally:
        if process.returncode is None:
            process.kill()


async def until_answering(
    client: httpx.AsyncClient, process: asyncio.subprocess.Process, seconds: float = 30
) -> None:
    """Until the served app answers ``client``'s GET /openapi.json with 200; fails at once if
    ``process`` exits meanwhile."""

    async def answers() -> bool:
        assert process.returncode is None, "kapok serve exited during start-up"
        return (await client.get("/openapi.json")).status_code == 200

    await until("kapok serve answered HTTP", answers, seconds)


def descendants(pid: int) -> list[int]:
    """The processes ``pid`` started, and theirs, that are still there (Linux ``/proc``)."""
    return [int(member) for member in family(pid)[1:]]


def alive(pid: int) -> bool:
    """Running, not ended (a zombie has ended: its parent has only not reaped it yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def until_gone(pids: list[int], seconds: float = 10) -> bool:
    """Whether every one of ``pids`` has ended within ``seconds``."""
    try:
        await until("gone", lambda: not any(alive(pid) for pid in pids), seconds)
    except AssertionError:
        return False
    return True
