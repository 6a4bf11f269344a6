"""`kapok audit replay`: argument parsing stays in kapok/cli.py; this runs the audit."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from services.reporting.audit import audit_replay
from services.reporting.entrypoints.http import BadRequest, parse_day
from shared.bus.naming import Naming
from shared.collector import tune_gc
from shared.runtime import connect
from shared.settings import PRODUCERS, Settings


def run_audit_replay(as_of: str | None, known_at: str | None, url: str | None) -> int:
    try:
        day = parse_day(as_of, "--as-of") if as_of else None
        moment = datetime.fromisoformat(known_at.replace("Z", "+00:00")) if known_at else None
    except (BadRequest, ValueError) as error:
        print(f"kapok audit replay: {error}", file=sys.stderr)
        return 2
    if moment is not None and moment.tzinfo is None:
        print("kapok audit replay: --known-at needs its timezone, e.g. +08:00", file=sys.stderr)
        return 2
    settings = Settings()

    async def run() -> int:
        nc = await connect(settings, "audit")
        tune_gc()  # folding allocates as the live consumer does (shared/collector.py)
        try:
            return await audit_replay(
                nc, Naming.of(settings), PRODUCERS, as_of=day, known_at=moment, live_url=url
            )
        finally:
            await nc.close()

    return asyncio.run(run())
