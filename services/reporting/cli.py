"""`kapok audit replay`: argument parsing stays in kapok/cli.py; this runs the audit.

Every expected failure ends in one line on stderr and a non-zero exit, never a traceback:
the bus cannot be reached, it holds no Kapok streams, a process of the replay failed.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

import nats
from nats.aio.client import Client as NATS

from services.reporting.audit import audit_replay
from services.reporting.entrypoints.http import BadRequest, parse_day
from shared.bus.auth import AUDITOR
from shared.bus.naming import Naming
from shared.bus.servers import servers
from shared.collector import tune_gc
from shared.runtime import connect_options
from shared.settings import PRODUCERS, Settings

CONNECT_SECONDS = 5.0


def run_audit_replay(as_of: str | None, known_at: str | None, url: str | None) -> int:
    try:
        day = parse_day(as_of, "--as-of") if as_of else None
        moment = datetime.fromisoformat(known_at.replace("Z", "+00:00")) if known_at else None
    except (BadRequest, ValueError) as error:
        return _failed(str(error))
    if moment is not None and moment.tzinfo is None:
        return _failed("--known-at needs its timezone, e.g. +08:00")
    settings = Settings()

    async def run() -> int:
        try:
            nc = await _connect(settings)
        except Exception as error:
            return _failed(f"cannot reach the bus at {settings.nats_url}: {_said(error)}")
        tune_gc()  # folding allocates as the live consumer does (shared/collector.py)
        try:
            return await audit_replay(
                nc, Naming.of(settings), PRODUCERS, as_of=day, known_at=moment, live_url=url
            )
        except Exception as error:  # the bus went away, a replay process failed, …
            return _failed(f"stopped: {_said(error)}")
        finally:
            await nc.close()

    return asyncio.run(run())


async def _connect(settings: Settings) -> NATS:
    """A connection for one read: it gives up after a few seconds rather than wait for a
    bus for ever as the services do (shared/runtime.py), and says nothing of its retries."""

    async def quiet(_: Exception) -> None:
        pass

    return await asyncio.wait_for(
        nats.connect(
            servers(settings.nats_url),
            name="kapok-audit",
            connect_timeout=2,
            max_reconnect_attempts=3,
            reconnect_time_wait=0.5,
            error_cb=quiet,
            **connect_options(settings, AUDITOR),
        ),
        CONNECT_SECONDS,
    )


def _said(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _failed(line: str) -> int:
    print(f"kapok audit replay: {line}", file=sys.stderr)
    return 2
