"""The staff dashboard: ``GET /`` (a static page, its script and style served from here, no
CDN), ``GET /api/dashboard`` (what the page draws) and ``GET /api/stream`` (server-sent
events: the headline figures, sent again whenever a commit of the consumer changed them).

The page reads the same counters as ``/api/report``: the figures are `report`'s, and the
charts are the services given (calls plus completed follow-ups) per business day, and split
by district and by vulnerable group.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from services.reporting.domain.report import figures
from services.reporting.entrypoints.http import REFUSED, DayOrInstant, Reporting, needs, parse_day
from shared.auth.gate import Gate
from shared.auth.principal import Permission
from shared.auth.registry import Unauthorized
from shared.service.http import authorization, error_responses

STATIC = Path(__file__).parent / "static"
SERVICES = ("calls_received", "follow_ups_completed")  # services given = the two together
POLL = 0.25  # seconds between looks at the totals in a stream
KEEPALIVE = 15.0  # seconds between comments on a quiet stream


def register(app: FastAPI, reporting: Reporting, gate: Gate) -> None:
    """The dashboard's page and scripts are open (they hold no figures: the page asks for a
    token, README "Signing in"); its data and live stream need a role that reads figures."""
    figures_ = [needs(gate, Permission.READ_FIGURES)]
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "dashboard.html", media_type="text/html; charset=utf-8")

    @app.get(
        "/api/dashboard",
        responses={**REFUSED, **error_responses("401", "403")},
        dependencies=figures_,
    )
    async def data(as_of: DayOrInstant = None) -> JSONResponse:
        day = parse_day(as_of) if as_of is not None else None

        async def services_by(by: str) -> list[list[Any]]:
            """Services given summed by one dimension, as [[value, sum], …]."""
            rows = await reporting.store.counters(day, {"metric": list(SERVICES)}, (by,))
            return [[row[by], row["value"]] for row in rows]

        return JSONResponse(
            {
                "report": await reporting.report_as_of(day),
                "per_day": await services_by("day"),
                "by_district": await services_by("district"),
                "by_group": await services_by("grp"),
            }
        )

    @app.get(
        "/api/stream",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "figures events"},
            **error_responses("401", "403"),
        },
        dependencies=figures_,
    )
    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(
            _figures(request, reporting, gate),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


async def _figures(request: Request, reporting: Reporting, gate: Gate) -> AsyncIterator[bytes]:
    """An ``event: figures`` with the current headline figures (as of now) first, then
    again after every change; polls the totals, so it sees commits of any process. Ends as
    soon as its token is revoked or expires: the page's reconnect then meets the 401."""
    last: bytes | None = None
    quiet = 0.0
    credential = authorization(request)
    while not await request.is_disconnected():
        try:
            gate.principal(credential)
        except Unauthorized:
            return
        data = orjson.dumps(figures(await reporting.store.totals(None)))
        if data != last:
            last, quiet = data, 0.0
            yield b"event: figures\ndata: " + data + b"\n\n"
        elif quiet >= KEEPALIVE:
            quiet = 0.0
            yield b": still here\n\n"
        await asyncio.sleep(POLL)
        quiet += POLL
