"""Prometheus text exposition (format 0.0.4), written by hand: it is a few lines of text.

Labels are low-cardinality only: district (11), group (5), category or kind (a few codes),
stream (3). Stations, points, campaigns and days stay in `/api/counters`, never in labels:
each label value is a time series on the Prometheus server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from shared.consumer import SourceStats

PREFIX = "kapok_reporting_"

HELP: dict[str, str] = {
    "hotline_points_opened": "Hotline points opened (开通热线服务点)",
    "hotline_points_open": "Hotline points open now",
    "hotline_points_closed": "Hotline points closed",
    "hotline_shifts": "Social-worker hotline shifts started (接线服务社工人次)",
    "hotline_shifts_ended": "Hotline shifts ended",
    "hotline_shift_minutes": "Minutes on duty in ended shifts",
    "calls_received": "Hotline calls received: services given by phone or online",
    "calls_completed": "Hotline calls completed",
    "call_seconds": "Seconds spent on completed calls",
    "call_outcomes": "Completed calls by outcome",
    "follow_ups_scheduled": "Tracked follow-ups scheduled",
    "follow_ups_completed": "Tracked follow-ups given (跟踪服务)",
    "referrals": "Referrals from the hotline to aid",
    "referral_needs": "Needs named in referrals",
    "aid_requests": "Aid requests",
    "aid_request_needs": "Needs named in aid requests",
    "referrals_to_aid": "Aid requests opened by a hotline referral",
    "aid_requests_open": "Aid requests open now",
    "aid_assignments": "Aid requests assigned to a worker or volunteer",
    "aid_actions": "Emergency aid actions delivered (紧急援助)",
    "aid_persons_served": "Persons served by aid actions (服务人次)",
    "aid_actions_by_kind": "Aid actions, once per kind delivered",
    "aid_delivered": "Aid goods delivered, in their units",
    "aid_delivered_value_yuan": "Value of aid goods delivered, CNY",
    "aid_cancellations": "Aid requests cancelled",
    "emergency_cases": "Emergency cases opened (突发重病、摔伤)",
    "campaigns_launched": "Charity campaigns and self-help projects launched",
    "pledges": "Donation pledges",
    "pledged_funds_yuan": "Funds pledged, CNY",
    "pledged_goods": "Goods pledged, in their units",
    "goods_receipts": "Donated goods receipts",
    "goods_received": "Donated goods received, in their units",
    "donated_items": "Donated goods received in countable units (件)",
    "goods_received_value_yuan": "Value of donated goods received, CNY",
    "funds_received_yuan": "Money raised, CNY (筹款)",
    "volunteers_linked": "Volunteer person-times linked (志愿者人次)",
    "distributions": "Goods distributions",
    "distribution_recipients": "Recipients of goods distributions",
    "goods_distributed": "Goods distributed, in their units",
    "stock_shortfalls": "Aid deliveries that drew more than a campaign held",
    "stock_short": "Quantity short in stock shortfalls, in their units",
    "project_outputs": "Self-help project outputs recorded",
    "project_output": "Self-help project output, in its units",
    "project_beneficiaries": "Beneficiaries of self-help project outputs",
    "project_income_yuan": "Income from self-help projects' produce sold, CNY",
}

GAUGES = frozenset({"hotline_points_open", "aid_requests_open"})


def exposed(metric: str, raw: int) -> tuple[str, str]:
    """The exposed name (without prefix or suffix) and the exact value's text."""
    if metric.endswith("_fen"):
        return metric[: -len("_fen")] + "_yuan", str((Decimal(raw) / 100).quantize(Decimal("0.01")))
    if metric.endswith("_milli"):
        return metric[: -len("_milli")], str((Decimal(raw) / 1000).normalize())
    return metric, str(raw)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs: Iterable[tuple[str, str]]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs if v)
    return "{" + inner + "}" if inner else ""


def render(
    rows: Iterable[Mapping[str, Any]],
    stats: Mapping[str, SourceStats] | None,
    parts: Mapping[str, bool] | None = None,
    leases: Mapping[str, bool] | None = None,
) -> str:
    """``rows``: counter sums by metric, district, grp and category (all days); ``parts``:
    whether each of the process's parts runs (the consumer, the KV publisher, NATS);
    ``leases``: whether this instance holds each lease (README, "Two instances of a
    service")."""
    series: dict[str, list[str]] = {}
    for row in rows:
        name, value = exposed(row["metric"], int(row["value"]))
        kind = "gauge" if row["metric"] in GAUGES else "counter"
        full = PREFIX + name + ("" if kind == "gauge" else "_total")
        labels = _labels(
            [("district", row["district"]), ("group", row["grp"]), ("category", row["category"])]
        )
        if full not in series:
            series[full] = [
                f"# HELP {full} {HELP.get(name, name)}",
                f"# TYPE {full} {kind}",
            ]
        series[full].append(f"{full}{labels} {value}")
    lines = [line for block in series.values() for line in block]
    if stats is not None:
        own = [
            ("consumer_lag", "gauge", "Events on the stream not yet applied here", "lag"),
            ("consumer_checkpoint", "gauge", "Last stream sequence applied", "checkpoint"),
            ("events_applied_total", "counter", "Events applied since start", "applied"),
            (
                "events_prepared_elsewhere_total",
                "counter",
                "Of the events applied since start, those decoded and folded in the worker",
                "prepared_elsewhere",
            ),
            (
                "events_skipped_total",
                "counter",
                "Redelivered events skipped since start",
                "skipped",
            ),
            (
                "dead_letters_total",
                "counter",
                "Events dead-lettered by this consumer (its whole life, from its checkpoints)",
                "dead_letters",
            ),
            (
                "chain_breaks_total",
                "counter",
                "Events refused since start: their prev_hash is not the previous event's hash",
                "chain_breaks",
            ),
            (
                "forged_total",
                "counter",
                "Messages refused since start: a bad signature, or none where the source signs",
                "forged",
            ),
            (
                "unsigned_held",
                "gauge",
                "Events delivered and held back, waiting for the signature that covers them",
                "unsigned_held",
            ),
            (
                "source_diverged",
                "gauge",
                "1 while the stream ends in messages its source did not publish",
                "diverged",
            ),
            ("stream_last_sequence", "gauge", "The stream's last sequence when seen", "last_seq"),
            (
                "checkpoint_moved",
                "gauge",
                "1 once a checkpoint write found another writer's position (two folding)",
                "checkpoint_moved",
            ),
        ]
        for name, kind, text, attr in own:
            full = PREFIX + name
            lines += [f"# HELP {full} {text}", f"# TYPE {full} {kind}"]
            lines += [
                f'{full}{{stream="{source}"}} {getattr(s, attr)}' for source, s in stats.items()
            ]
    if parts is not None:
        full = PREFIX + "part_up"
        text = "1 while the part runs (the consumer's and KV publisher's tasks, NATS)"
        lines += [f"# HELP {full} {text}"]
        lines += [f"# TYPE {full} gauge"]
        lines += [f'{full}{{part="{part}"}} {int(up)}' for part, up in parts.items()]
    if leases:
        full = PREFIX + "lease_held"
        text = "1 while this instance holds the lease (fold: it folds; 0: it stands by)"
        lines += [f"# HELP {full} {text}", f"# TYPE {full} gauge"]
        lines += [f'{full}{{lease="{name}"}} {int(held)}' for name, held in leases.items()]
    return "\n".join(lines) + "\n"
