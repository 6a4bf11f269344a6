"""A process's health, every part named: ``GET /api/health`` (readiness) and
``GET /api/health/live`` (liveness).

Liveness answers 200 while the process's event loop answers at all: restart it only when
that fails. Readiness looks at every part and answers with ``status``:

- ``"down"`` (503, ``ready`` false): the database does not answer a ``SELECT 1`` within
  `TIMEOUT`; the relay stopped (commands would still be stored, but their events would never
  reach the bus); a background task (relay, consumer runner, KV publisher) died or ended; a
  consumer further behind than its ``ready_lag`` (reporting); NATS away where the process is
  useless without it (``needs_nats``: reporting's figures would go stale unseen).
- ``"degraded"`` (200, ``ready`` true, every cause in ``problems``): NATS reconnecting for a
  command service (commands succeed, events wait in the store); a consumer with dead letters
  (the count and the last reason) or hash-chain breaks, or stalled (events waiting and its
  checkpoint still for `STALL_S`, as successive checks saw it). It serves; someone must look.
- ``"ok"`` (200): nothing to say.

Two instances of a service (README, "Two instances of a service"): ``instance`` names this
one, ``leases`` says whether it holds each lease (the relay's, reporting's fold) and who does
if it does not. Standing by is no problem: the relay part says ``standing_by``, and so does
each source of a consumer that another instance runs; a fold's problems (dead letters, a
divergence, a stall) are the running instance's to say, not repeated by the stand-by. A
checkpoint found moved by another writer (two folding at once) is degraded until the process
restarts. ``GET /metrics`` says the same in numbers (`shared.service.metrics`).

Degraded is 200 on purpose: a load balancer that took a degraded service out would turn a
stuck dead letter into an outage of every command; the body and ``kapok status`` say it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from shared.auth.gate import OPEN, Gate
from shared.auth.principal import Permission
from shared.auth.registry import Unauthorized
from shared.consumer import ConsumerRunner, SourceStats
from shared.eventstore import Database
from shared.lease import Lease
from shared.relay import OutboxRelay
from shared.runtime import Link
from shared.service import metrics
from shared.service.replies import (
    DATABASE,
    INTERNAL_ERROR,
    outage_errors,
    unavailable,
    unreachable,
)

TIMEOUT = 2.0  # seconds for the database's answer, and for the bus's answer on lag
# A consumer with events waiting whose checkpoint has not moved for this long is stalled.
STALL_S = 60.0
LIVE = "/api/health/live"
log = logging.getLogger("kapok.service")
READY = "/api/health"


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'' if n == 1 else 's'}"


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat()


@dataclass
class Verdict:
    """What a check found: why the process is not ready, and what else someone must see."""

    down: list[str] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "down" if self.down else "degraded" if self.degraded else "ok"


@dataclass
class Health:
    """The parts of one process that its health names (what it does not run stays None)."""

    name: str
    db: Database
    link: Link | None = None
    relay: OutboxRelay | None = None
    runners: Sequence[ConsumerRunner] = ()
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    ready_lag: int | None = None  # a consumer further behind is not ready; None: shown only
    needs_nats: bool = False  # NATS away makes it not ready (else degraded)
    timeout: float = TIMEOUT
    stall_after: float = STALL_S
    instance: str | None = None  # this process among its service's instances
    leases: Mapping[str, Lease] = field(default_factory=dict)  # besides the relay's
    # (consumer, source) -> its checkpoint, and since when (monotonic) it is there with lag
    _still: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict, repr=False)

    async def check(self) -> tuple[int, dict[str, Any]]:
        """The status code and the body of ``GET /api/health``."""
        verdict = Verdict()
        body: dict[str, Any] = {"service": self.name}
        if self.instance is not None:
            body["instance"] = self.instance
        if leases := self._leases():
            body["leases"] = leases
        body["database"] = await self._database(verdict)
        if self.link is not None:
            body["nats"] = self._nats(verdict)
        if self.relay is not None:
            body["relay"] = self._relay(verdict)
        if self.runners:
            body["consumers"] = await self._consumers(verdict)
        body["tasks"] = self._tasks(verdict)
        head = {
            "status": verdict.status,
            "ready": not verdict.down,
            "problems": verdict.down + verdict.degraded,
        }
        return (503 if verdict.down else 200), {**head, **body}

    def _leases(self) -> dict[str, Any]:
        """Each lease: whether this instance holds it, who does, since when."""
        leases = dict(self.leases)
        if self.relay is not None and self.relay.lease is not None:
            leases = {"relay": self.relay.lease, **leases}
        return {
            name: {
                "name": lease.name,
                "held": lease.held,
                "holder": lease.holder,
                "since": _iso(lease.since),
                "taken": lease.taken,
                "error": lease.error,
            }
            for name, lease in leases.items()
        }

    def held(self) -> dict[str, bool]:
        """Whether this instance holds each of its leases (for metrics)."""
        return {name: lease["held"] for name, lease in self._leases().items()}

    def running(self) -> dict[str, bool]:
        """Whether each background task runs, and NATS is connected (for metrics)."""
        up = {task.get_name(): not task.done() for task in self.tasks}
        if self.link is not None:
            up["nats"] = self.link.connected
        return up

    async def _database(self, verdict: Verdict) -> dict[str, Any]:
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout), self.db.read() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as error:  # whatever it is, the database did not answer
            if away := unreachable(error):
                DATABASE.failed(error)  # the outage's one log line, if it is the first sign
            why = DATABASE.last_error if away else f"{type(error).__name__}: {error}"[:300]
            verdict.down.append(f"database: {'unreachable' if away else 'failed'} ({why})")
            return {"reachable": False, "error": why, "since": _iso(DATABASE.since)}
        DATABASE.ok()
        return {"reachable": True, "ms": round((time.perf_counter() - began) * 1000, 1)}

    def _nats(self, verdict: Verdict) -> dict[str, Any]:
        link = self.link
        assert link is not None
        if link.connected:
            return {"connected": True, "outages": link.outages}
        since = link.down_since
        why = f"nats: reconnecting since {_iso(since)} ({link.last_error})"
        (verdict.down if self.needs_nats else verdict.degraded).append(why)
        return {
            "connected": False,
            "reconnecting_since": _iso(since),
            "for_s": None if since is None else round(time.time() - since, 1),
            "last_error": link.last_error,
            "outages": link.outages,
        }

    def _relay(self, verdict: Verdict) -> dict[str, Any]:
        assert self.relay is not None
        stats = self.relay.stats
        if stats.stopped:
            verdict.down.append(f"relay: stopped: {stats.stopped}")
        return {
            "stream": self.relay.stream,
            "position": stats.progress,
            "head": stats.head,
            "stream_last": stats.stream_last,
            "lag": stats.lag,
            "verified": stats.verified,
            "failures": stats.failures,
            "stopped": stats.stopped,
            # Another instance's relay publishes; this one's figures are as it last held it.
            "standing_by": self.relay.standing_by,
        }

    async def _consumers(self, verdict: Verdict) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for runner in self.runners:
            fresh = self.link is None or self.link.connected  # else the lag as last seen
            if fresh:
                try:
                    async with asyncio.timeout(self.timeout):
                        await runner.refresh_lag()
                except Exception:  # the bus did not answer: the lag as last seen
                    fresh = False
            sources: dict[str, Any] = {}
            # Not folding (another instance holds its lease, or it is about to take it): its
            # figures are the database's, the folding instance's to judge and say (a stand-by
            # once said "diverges after position 0" while the folding instance was fine).
            standing_by = not runner.active
            for source, s in runner.stats.items():
                where = f"consumer {runner.name} on {source}"
                if s.moved:  # this instance's own write found another's: said until restart
                    verdict.degraded.append(s.moved)
                if self.ready_lag is not None and s.lag > self.ready_lag:
                    # The figures served here are this far behind, whoever folds.
                    verdict.down.append(f"{where}: {_count(s.lag, 'event')} behind")
                sources[source] = self._source(s, fresh, standing_by)
                if standing_by:
                    continue
                if s.dead_letters:
                    last = s.last_dead_letter or "see the DEADLETTER stream"
                    counted = _count(s.dead_letters, "dead letter")
                    verdict.degraded.append(f"{where}: {counted}, not counted here ({last})")
                if s.chain_breaks:
                    breaks = _count(s.chain_breaks, "hash-chain break")
                    verdict.degraded.append(f"{where}: {breaks}, not folded")
                waited = s.unsigned_since and asyncio.get_running_loop().time() - s.unsigned_since
                if waited and waited > self.stall_after / 2:
                    held = _count(s.unsigned_held, "event")
                    verdict.degraded.append(
                        f"{where}: {held} held {waited:.0f}s for a signature of {source}'s key, "
                        "not counted (a stranger's unsigned events, or their producer stopped "
                        "half-way through publishing)"
                    )
                if s.diverged:
                    verdict.degraded.append(
                        f"{where}: the stream diverges from {source} after position "
                        f"{s.genuine} ({_count(s.checkpoint - s.genuine, 'message')} set aside "
                        f"as not {source}'s; README, 'When a relay stops')"
                    )
                if s.failing_since is not None:
                    failing = asyncio.get_running_loop().time() - s.failing_since
                    verdict.degraded.append(
                        f"{where}: failing for {failing:.0f}s, nothing applied ({s.failing})"
                    )
                if s.forged:
                    forged = _count(s.forged, "forged message")
                    verdict.degraded.append(
                        f"{where}: {forged} (not signed by {source}'s key), not folded"
                    )
                if (still := self._stalled(runner.name, source, s.checkpoint, s.lag)) is not None:
                    verdict.degraded.append(
                        f"{where}: stalled, {_count(s.lag, 'event')} waiting, the checkpoint at "
                        f"{s.checkpoint} for {still:.0f}s"
                    )
            out[runner.name] = sources
        return out

    @staticmethod
    def _source(s: SourceStats, fresh: bool, standing_by: bool) -> dict[str, Any]:
        return {
            "checkpoint": s.checkpoint,
            "last_seq": s.last_seq,
            "lag": s.lag,
            "lag_fresh": fresh,
            "applied": s.applied,
            "prepared_elsewhere": s.prepared_elsewhere,
            "dead_letters": s.dead_letters,
            "last_dead_letter": s.last_dead_letter,
            "chain_breaks": s.chain_breaks,
            "forged": s.forged,
            "failing": s.failing,
            "diverged": bool(s.diverged),
            "unsigned_held": s.unsigned_held,
            "checkpoint_moved": s.moved,
            "standing_by": standing_by,
        }

    def _stalled(self, consumer: str, source: str, checkpoint: int, lag: int) -> float | None:
        """For how long the checkpoint stood still with events waiting, once that is longer
        than `stall_after`; else None."""
        now, key = time.monotonic(), (consumer, source)
        seen = self._still.get(key)
        if seen is None or seen[0] != checkpoint or lag == 0:
            self._still[key] = (checkpoint, now)
            return None
        still = now - seen[1]
        return still if still > self.stall_after else None

    def _tasks(self, verdict: Verdict) -> dict[str, str]:
        out: dict[str, str] = {}
        for task in self.tasks:
            name = task.get_name()
            if not task.done():
                out[name] = "running"
                continue
            if task.cancelled():
                out[name] = "cancelled"
            elif (error := task.exception()) is not None:
                out[name] = f"died: {type(error).__name__}: {error}"
            else:
                out[name] = "ended"
            verdict.down.append(f"{name}: {out[name]}")
        return out


def register(app: FastAPI, health: Health, gate: Gate = OPEN) -> None:
    """``/api/health`` and ``/api/health/live`` on ``app``, and 503 for the requests that
    meet the database away (`answer_outages`). Readiness answers anyone its status and
    code (a probe has no token); its parts and problems only to a role that watches."""
    answer_outages(app)
    metrics.register(app, health, gate)  # for a role that watches, as its parts

    async def ready(request: Request) -> JSONResponse:
        status, body = await health.check()
        if not gate.open and not watches(gate, request.headers.get("authorization")):
            body = {"status": body["status"], "ready": body.get("ready", status < 500)}
        return JSONResponse(body, status_code=status)

    app.add_api_route(
        READY,
        ready,
        methods=["GET"],
        summary="Readiness: the database, NATS, the relay, the consumers, background tasks",
        operation_id="health",
        openapi_extra=OPEN_TO_ALL,
        responses={
            200: _documented('ready: status "ok" or "degraded" (problems name why)'),
            503: _documented('not ready: status "down" (problems name why)'),
        },
    )
    register_live(app)


# Marks an operation that needs no token in the OpenAPI document (`http.secured`).
OPEN_TO_ALL = {"x-kapok-open": True}


def watches(gate: Gate, authorization: str | None) -> bool:
    try:
        principal = gate.principal(authorization)
    except Unauthorized:
        return False
    return principal is None or principal.may(Permission.WATCH)


def register_live(app: FastAPI) -> None:
    """``/api/health/live``: 200 while the process answers at all."""

    async def live() -> JSONResponse:
        return JSONResponse({"status": "ok", "live": True})

    app.add_api_route(
        LIVE,
        live,
        methods=["GET"],
        summary="Liveness: the process answers",
        operation_id="live",
        openapi_extra=OPEN_TO_ALL,
        responses={200: _documented("the process answers")},
    )


# What the OpenAPI documents say of a health answer: the head every one has; the parts (database,
# nats, relay, consumers, tasks) are there when the process has them.
_HEALTH = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded", "down"]},
        "ready": {"type": "boolean"},
        "live": {"type": "boolean"},
        "problems": {"type": "array", "items": {"type": "string"}},
    },
}


def _documented(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _HEALTH}}}


def answer_outages(app: FastAPI) -> None:
    """A request that meets the database away is answered 503 in Kapok's error shape, the
    outage logged once (`replies.DATABASE`) instead of a traceback per request. Registered
    for the errors' own classes: Starlette re-raises what its handler for Exception handled,
    and the server then logs each one."""

    async def database_error(request: Request, error: Exception) -> Response:
        if (reply := unavailable(error)) is None:
            log.error("%s %s failed", request.method, request.url.path, exc_info=error)
            return Response(INTERNAL_ERROR, status_code=500, media_type="application/json")
        return Response(reply.body, status_code=reply.status, media_type="application/json")

    for kind in outage_errors():
        app.add_exception_handler(kind, database_error)
