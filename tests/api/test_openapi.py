"""The OpenAPI documents are true: schemathesis, with every one of its checks, against each
service started as an operator starts it (`kapok serve <service>`, its own SQLite, the test's
nats-server), finds nothing.

What its checks mean here: no 5xx for any input; every status and content type answered is
the one documented, with the documented schema (the error shape included); data the schema
calls invalid is refused (4xx) and data it calls valid is not (a 404, 409 or 201 is fine);
the Allow header of a 405 names the documented methods; an operation the document secures
refuses a request without the token (401). The seed is fixed and the examples
few, so the test is the same on every run and costs well under a minute a service on an
idle machine. `st_hooks` says what the documents state in words and JSON Schema cannot.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import httpx
import pytest
from harness.processes import ADMIN_TOKEN, serve, serve_env, stop, until_answering
from harness.waits import free_port

from shared.settings import Settings

HERE = Path(__file__).parent
SEED = 20200123  # the day 卫姨 called
EXAMPLES = 5  # per operation; the coverage phase adds the boundary cases of every schema


# The catalogue of places makes each place one of 177 alternatives, each a boundary case.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("service", ["hotline", "aid", "donation", "reporting"])
async def test_schemathesis_finds_nothing_against_the_served_document(
    service: str, settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = await serve(service, serve_env(settings, tmp_path / "data"), tmp_path / "log", port)
    try:
        async with httpx.AsyncClient(base_url=base) as client:
            await until_answering(client, process)
        code, report = await schemathesis(f"{base}/openapi.json", tmp_path)
    finally:
        await stop(process)
    assert code == 0, report


async def schemathesis(document: str, workdir: Path) -> tuple[int, str]:
    """``schemathesis run`` with all its checks, our seed and examples, in ``workdir`` (where
    it leaves its cache): its exit code and report."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "st_hooks", "PYTHONPATH": str(HERE)}
    run = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "schemathesis.cli", "run", document, "--checks", "all"),
        *("--seed", str(SEED), "--max-examples", str(EXAMPLES), "--workers", "1"),
        *("--no-color", "--request-timeout", "10"),
        # Signed in as an administrator: every operation is reachable, and schemathesis's
        # `ignored_auth` check sends each secured one without the token, expecting a 401.
        *("--header", f"Authorization: Bearer {ADMIN_TOKEN}"),
        env=env,
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await run.communicate()
    assert run.returncode is not None
    return run.returncode, out.decode(errors="replace")
