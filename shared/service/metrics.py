"""``GET /metrics`` of a command service's instance (hotline, aid, donation, people), in
Prometheus's text format (0.0.4), for a role that watches (ops, administrator): 401/403
otherwise, as reporting's.

What it says is what ``/api/health`` says of this instance, as numbers an alert can read
(docs/alerts.yml): the relay's position, lag and whether it stopped or stands by; each lease
and whether this instance holds it (``kapok_lease_held``: summed over a service's instances,
1 is right, 0 means no one relays or consumes, 2 means two do); each consumer's lag,
checkpoint and dead letters; whether each background part runs.

The instance's own name is the label ``kapok_instance``: Prometheus sets ``instance`` itself
(the target's host:port) and would rename ours to ``exported_instance``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from shared.auth.gate import Gate
from shared.auth.principal import Permission
from shared.service.http import error_responses, reader

if TYPE_CHECKING:
    from shared.service.health import Health

PATH = "/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**pairs: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())
    return "{" + inner + "}" if inner else ""


class _Lines:
    """A metric's HELP and TYPE once, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(self, name: str, kind: str, text: str, samples: Iterable[tuple[str, int]]) -> None:
        samples = list(samples)
        if not samples:
            return
        full = f"kapok_{name}"
        self.lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
        self.lines += [f"{full}{labels} {value}" for labels, value in samples]


async def render(health: Health) -> str:
    """The exposition of ``health``'s parts (its consumers' lag refreshed first, if the bus
    answers: else as last seen)."""
    out = _Lines()
    service, instance = health.name, health.instance or ""
    own = {"service": service, "kapok_instance": instance}
    relay = health.relay
    if relay is not None:
        stats, at = relay.stats, _labels(**own, stream=relay.stream)
        out.metric(
            "relay_position", "gauge", "The store's position up to which the stream is proven",
            [(at, stats.progress)],
        )  # fmt: skip
        out.metric("relay_head", "gauge", "The store's last position", [(at, stats.head)])
        out.metric("relay_lag", "gauge", "Events stored, not yet on the stream", [(at, stats.lag)])
        out.metric(
            "relay_stopped", "gauge",
            "1 once the relay stopped (the stream diverges from the store; README, 'When a "
            "relay stops')",
            [(at, int(stats.stopped is not None))],
        )  # fmt: skip
        out.metric(
            "relay_standing_by", "gauge", "1 while another instance's relay publishes",
            [(at, int(relay.standing_by))],
        )  # fmt: skip
        out.metric(
            "relay_failures_total", "counter", "Publish attempts that failed since start",
            [(at, stats.failures)],
        )  # fmt: skip
    out.metric(
        "lease_held", "gauge",
        "1 while this instance holds the lease (summed over a service's instances: 1)",
        [(_labels(**own, lease=lease), int(held)) for lease, held in health.held().items()],
    )  # fmt: skip
    runners = list(health.runners)
    for runner in runners:
        with contextlib.suppress(Exception):  # the bus away: the lag as last seen
            await runner.refresh_lag()
    for name, kind, text, attr in (
        ("consumer_lag", "gauge", "Events on the stream not yet applied here", "lag"),
        ("consumer_checkpoint", "gauge", "Last stream sequence applied", "checkpoint"),
        (
            "consumer_dead_letters_total", "counter",
            "Events dead-lettered by the consumer (its whole life, from its checkpoints)",
            "dead_letters",
        ),
        ("consumer_diverged", "gauge", "1 while the stream ends in a stranger's messages",
         "diverged"),
    ):  # fmt: skip
        out.metric(
            name,
            kind,
            text,
            [
                (_labels(**own, consumer=r.name, stream=source), int(getattr(s, attr)))
                for r in runners
                for source, s in r.stats.items()
            ],
        )
    out.metric(
        "consumer_standing_by", "gauge", "1 while another instance's consumer runs",
        [(_labels(**own, consumer=r.name), int(not r.active)) for r in runners],
    )  # fmt: skip
    out.metric(
        "part_up", "gauge", "1 while the part runs (relay, consumers, sign-in, NATS)",
        [(_labels(**own, part=part), int(up)) for part, up in health.running().items()],
    )  # fmt: skip
    return "\n".join(out.lines) + "\n"


def register(app: FastAPI, health: Health, gate: Gate) -> None:
    """``GET /metrics`` on ``app``, for a role that watches (`Permission.WATCH`)."""

    async def metrics(request: Request) -> PlainTextResponse:
        reader(gate, request, Permission.WATCH)  # 401/403 (`Refused`, the app's handler)
        return PlainTextResponse(await render(health), media_type=CONTENT_TYPE)

    app.add_api_route(
        PATH,
        metrics,
        methods=["GET"],
        summary="Prometheus metrics of this instance: relay, leases, consumers, parts",
        operation_id="metrics",
        response_class=PlainTextResponse,
        responses={
            200: {
                "description": "the metrics, Prometheus's text format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            **error_responses("401", "403"),
        },
    )
