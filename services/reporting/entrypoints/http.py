"""The reporting HTTP API: counters, the four-nets report, health and metrics.

Reads only: the counters are written by the consumer runner alone. "As of" is a business day
(Asia/Shanghai): a date, or an instant that names its day (the counters are daily buckets, so
an instant counts through the end of its day in Guangzhou; the audit replay does the same).
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from html import escape
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from starlette.exceptions import HTTPException

from services.reporting.adapters.counters import GROUPABLE, CounterStore
from services.reporting.domain.fold import DIMENSIONS, SHANGHAI, business_day
from services.reporting.domain.report import report, revision_view
from services.reporting.entrypoints.metrics import render
from shared.auth.gate import Gate
from shared.auth.principal import Permission
from shared.consumer import ConsumerRunner
from shared.service.health import OPEN_TO_ALL, Health, answer_outages, register_live, watches
from shared.service.http import (
    ERROR,
    JSON,
    error_responses,
    http_error,
    reader,
    refused,
    secured,
)
from shared.service.replies import Refused


class BadRequest(ValueError):
    pass


# What the OpenAPI document says of the query: declarations only, parse_day and parse_instant
# check them (and refuse with 422 in the error shape, never FastAPI's own).
_DAY_OR_INSTANT = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
    "description": "a day (2020-03-07) or an instant with its offset",
}
_INSTANT = {"type": "string", "format": "date-time", "description": "an instant with its offset"}
DayOrInstant = Annotated[str | None, Query(json_schema_extra=_DAY_OR_INSTANT)]
Instant = Annotated[str | None, Query(json_schema_extra=_INSTANT)]
REPORT_FORMATS = {"text/csv": {}, "text/html": {}}  # besides JSON, by ``format``
REFUSED: dict[int | str, dict[str, Any]] = {
    422: {"description": "a bad query; `error` says which", "content": {JSON: {"schema": ERROR}}}
}


def parse_day(text: str, name: str = "as_of") -> date:
    """A date (2020-03-07) or a timezone-aware instant, as its Asia/Shanghai business day."""
    if len(text) != 10:
        return business_day(parse_instant(text, name))
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"{name}: not a date or an ISO 8601 instant: {text!r}") from None


def parse_instant(text: str, name: str) -> datetime:
    """A timezone-aware ISO 8601 instant."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 instant: {text!r}") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{name}: an instant needs its timezone, e.g. {text}+08:00")
    return moment


def today() -> date:
    return datetime.now(SHANGHAI).date()


@dataclass
class Reporting:
    """What the HTTP API reads: the counters, and the runner for health and lag."""

    store: CounterStore
    runner: ConsumerRunner | None = None
    ready_lag: int = 1000  # ready when no stream is further behind than this
    extra: dict[str, Any] = field(default_factory=dict)
    # The process's parts as /api/health names them (`shared.service.health`): set by
    # `services.reporting.main.running`.
    health: Health | None = None

    async def report_as_of(
        self, as_of: date | None, known_at: datetime | None = None
    ) -> dict[str, object]:
        """``known_at``: as it was reported at that instant, the corrections since undone."""
        if known_at is None:
            return report(as_of or today(), await self.store.totals(as_of))
        body = report(as_of or today(), await self.store.totals_known_at(as_of, known_at))
        return {**body, "known_at": known_at.isoformat()}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"status": status, "error": message}, status_code=status)


def needs(gate: Gate, permission: Permission) -> Any:
    """A route's dependency: signed in, with a role that may ``permission`` (401/403)."""

    async def signed_in(request: Request) -> None:
        reader(gate, request, permission)

    return Depends(signed_in)


def build_app(reporting: Reporting, gate: Gate) -> FastAPI:
    app = FastAPI(title="Kapok reporting", version="1")
    # No such route (404) or method (405): the services' error shape, not FastAPI's.
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Refused, refused)
    figures_ = [needs(gate, Permission.READ_FIGURES)]
    signed_in = {**REFUSED, **error_responses("401", "403")}

    @app.exception_handler(BadRequest)
    async def bad_request(_: Request, error: BadRequest) -> JSONResponse:
        return _error(422, str(error))

    @app.get("/api/counters", dependencies=figures_, responses=error_responses("401", "403"))
    async def counters(request: Request) -> Response:
        """Counter sums. Filters: ``metric`` and any dimension (repeat or comma-separate for
        several values); ``by``: what to group by (default ``metric``; ``day`` gives a daily
        series); ``as_of`` and ``since``: a date or an instant."""
        params = request.query_params
        as_of = parse_day(params["as_of"]) if "as_of" in params else None
        since = parse_day(params["since"], "since") if "since" in params else None
        by = [b for b in params.get("by", "metric").split(",") if b]
        filters: dict[str, list[str]] = {}
        for name in params:
            if name in ("as_of", "since", "by"):
                continue
            if name not in GROUPABLE or name == "day":
                raise BadRequest(f"{name}: unknown filter; known: metric, {', '.join(DIMENSIONS)}")
            filters[name] = [v for raw in params.getlist(name) for v in raw.split(",")]
        for name in by:
            if name not in GROUPABLE:
                raise BadRequest(f"by: unknown dimension {name!r}; known: {', '.join(GROUPABLE)}")
        rows = await reporting.store.counters(as_of, filters, by, since)
        return JSONResponse(
            {
                "as_of": (as_of or today()).isoformat(),
                "filters": filters,
                "by": by,
                "counters": rows,
            }
        )

    @app.get(
        "/api/report",
        responses={200: {"content": REPORT_FORMATS}, **signed_in},
        dependencies=figures_,
    )
    async def get_report(
        as_of: DayOrInstant = None,
        format: Annotated[str, Query(json_schema_extra={"enum": ["json", "csv", "html"]})] = "json",
        known_at: Instant = None,
    ) -> Response:
        """``known_at``: an instant; the report as it stood then (corrections made since
        undone), as `kapok audit replay --known-at` replays it."""
        # An empty value is a malformed one (422), not an absent one.
        day = parse_day(as_of) if as_of is not None else None
        known = parse_instant(known_at, "known_at") if known_at is not None else None
        body = await reporting.report_as_of(day, known)
        if format == "json":
            return JSONResponse(body)
        if format == "csv":
            return Response(_csv(body), media_type="text/csv; charset=utf-8")
        if format == "html":
            return HTMLResponse(_html(body))
        raise BadRequest("format: one of json, csv, html")

    @app.get(
        "/api/revisions",
        responses=signed_in,
        dependencies=[needs(gate, Permission.READ_REVISIONS)],
    )
    async def get_revisions(as_of: DayOrInstant = None, since: Instant = None) -> JSONResponse:
        """The voids and corrections that changed a figure on a day up to ``as_of`` (a date
        or an instant), recorded after the instant ``since`` (e.g. when the report was
        published): what (type, fact, figures changed), when, who (the actor) and why."""
        day = parse_day(as_of) if as_of is not None else None
        after = parse_instant(since, "since") if since is not None else None
        rows = await reporting.store.revisions(day, after)
        return JSONResponse(
            {
                "as_of": (day or today()).isoformat(),
                "since": after.isoformat() if after else None,
                "revisions": [revision_view(row) for row in rows],
            }
        )

    @app.get("/api/health", openapi_extra=OPEN_TO_ALL)
    async def health(request: Request) -> JSONResponse:
        """Readiness (`shared.service.health`): not ready (503) while the database or NATS
        is away, the consumer or the KV publisher died, or a stream is more than
        ``ready_lag`` events behind; degraded (200) with dead letters or chain breaks.
        ``streams``: the consumer's sources, as ``consumers.reporting`` has them."""
        if reporting.health is None or reporting.runner is None:
            return JSONResponse({"status": "down", "ready": False, "reason": "no consumer"}, 503)
        status, body = await reporting.health.check()
        if not watches(gate, request.headers.get("authorization")):
            # A probe has no token: the status, never the figures behind it.
            return JSONResponse({"status": body["status"], "ready": status < 500}, status)
        body["ready_lag"] = reporting.health.ready_lag
        body["streams"] = body.get("consumers", {}).get(reporting.runner.name, {})
        return JSONResponse(body, status_code=status)

    register_live(app)
    answer_outages(app)

    @app.get(
        "/metrics",
        response_class=PlainTextResponse,
        dependencies=[needs(gate, Permission.WATCH)],
        responses=error_responses("401", "403"),
    )
    async def metrics() -> PlainTextResponse:
        runner = reporting.runner
        if runner is not None:
            # NATS away: the lag stays as last seen and the counters still answer.
            with contextlib.suppress(Exception):
                await runner.refresh_lag()
        rows = await reporting.store.counters(None, {}, ("metric", "district", "grp", "category"))
        return PlainTextResponse(
            render(
                rows,
                runner.stats if runner else None,
                reporting.health.running() if reporting.health else None,
                reporting.health.held() if reporting.health else None,
            ),
            media_type="text/plain; version=0.0.4; charset=utf-8",
        )

    # Here, not at the top: the dashboard module reads this one's Reporting and parse_day.
    from services.reporting.entrypoints.dashboard import register

    register(app, reporting, gate)
    secured(app.openapi(), gate)
    return app


def _csv(body: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["as_of", "net", "figure", "zh", "en", "value"])
    for net in body["nets"]:
        for line in net["lines"]:
            writer.writerow(
                [body["as_of"], net["en"], line["figure"], line["zh"], line["en"], line["value"]]
            )
    shown = {line["figure"] for net in body["nets"] for line in net["lines"]}
    for name, value in body["figures"].items():
        if name not in shown:
            writer.writerow([body["as_of"], "", name, "", "", value])
    return out.getvalue()


def _html(body: dict[str, Any]) -> str:
    sections = []
    for net in body["nets"]:
        rows = "".join(
            f"<tr><td>{escape(line['zh'])}<br><small>{escape(line['en'])}</small></td>"
            f'<td class="n">{escape(_shown(line["value"]))}</td></tr>'
            for line in net["lines"]
        )
        sections.append(
            f"<section><h2>{escape(net['zh'])} <small>{escape(net['en'])}</small></h2>"
            f"<table>{rows}</table></section>"
        )
    as_of = escape(str(body["as_of"]))
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>四网服务报告 Four nets report — {as_of}</title>
<style>
body {{ font-family: sans-serif; max-width: 48em; margin: 2em auto; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
td {{ border-bottom: 1px solid #ccc; padding: .4em; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; font-size: 1.2em; }}
h1 small, h2 small, td small {{ color: #666; font-weight: normal; }}
@media print {{ body {{ margin: 0; }} section {{ break-inside: avoid; }} }}
</style></head><body>
<h1>广州社工“四网”服务数据 <small>Guangzhou social workers' four nets</small></h1>
<p>截至 As of <strong>{as_of}</strong></p>
{"".join(sections)}
</body></html>
"""


def _shown(value: object) -> str:
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
