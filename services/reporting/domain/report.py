"""The four-nets report: figures from metric totals, shaped like the article's paragraphs.

Pure: it takes the totals of every metric as of a day (however they were summed: SQL over
daily buckets live, or a dict in the audit replay) and returns the same report either way,
so the two can be compared figure by figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

# The stable core scripts rely on (README): counts are ints, money a string in yuan.
CORE_FIGURES = (
    "hotline_points_opened",
    "hotline_shifts",
    "services_given",
    "tracked_services",
    "aid_actions",
    "aid_persons_served",
    "donated_items",
    "donated_value_yuan",
    "funds_raised_yuan",
    "volunteers_linked",
)


def yuan(fen: int) -> str:
    """Fen as a decimal string in yuan with two places: exact, never through a float."""
    return str((Decimal(fen) / 100).quantize(Decimal("0.01")))


def units(milli: int) -> int:
    """Thousandths of a unit to whole units (half-even; counted goods are whole anyway)."""
    return int((Decimal(milli) / 1000).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def figures(totals: Mapping[str, int]) -> dict[str, int | str]:
    """Every reported figure, from the totals of the fold's metrics."""
    t = lambda metric: int(totals.get(metric, 0))  # noqa: E731
    calls, follow_ups = t("calls_received"), t("follow_ups_completed")
    return {
        # the stable core
        "hotline_points_opened": t("hotline_points_opened"),
        "hotline_shifts": t("hotline_shifts"),
        "services_given": calls + follow_ups,
        "tracked_services": follow_ups,
        "aid_actions": t("aid_actions"),
        "aid_persons_served": t("aid_persons_served"),
        "donated_items": units(t("donated_items_milli")),
        "donated_value_yuan": yuan(t("goods_received_value_fen")),
        "funds_raised_yuan": yuan(t("funds_received_fen")),
        "volunteers_linked": t("volunteers_linked"),
        # and the rest of the four nets
        "hotline_points_open": t("hotline_points_open"),
        "calls_received": calls,
        "follow_ups_completed": follow_ups,
        "follow_ups_scheduled": t("follow_ups_scheduled"),
        "referrals": t("referrals"),
        "referrals_to_aid": t("referrals_to_aid"),
        "aid_requests": t("aid_requests"),
        "aid_requests_open": t("aid_requests_open"),
        "aid_cancellations": t("aid_cancellations"),
        "emergency_cases": t("emergency_cases"),
        "aid_delivered_value_yuan": yuan(t("aid_delivered_value_fen")),
        "campaigns_launched": t("campaigns_launched"),
        "pledged_funds_yuan": yuan(t("pledged_funds_fen")),
        "distributions": t("distributions"),
        "distribution_recipients": t("distribution_recipients"),
        "stock_shortfalls": t("stock_shortfalls"),
        "project_outputs": t("project_outputs"),
        "project_beneficiaries": t("project_beneficiaries"),
        "project_income_yuan": yuan(t("project_income_fen")),
    }


@dataclass(frozen=True, slots=True)
class Line:
    figure: str
    zh: str
    en: str


# The article's paragraphs, net by net: (title zh, title en, lines).
PARAGRAPHS: list[tuple[str, str, list[Line]]] = [
    (
        "抗疫心理防护网",
        "Psychological protection net (hotline)",
        [
            Line("hotline_points_opened", "开通热线服务点", "hotline points opened"),
            Line("hotline_points_open", "目前开放的热线服务点", "hotline points open now"),
            Line("hotline_shifts", "接线服务社工人次", "social-worker hotline shifts"),
            Line("services_given", "提供心理辅导、情绪疏导、防疫咨询服务人次", "services given"),
            Line("tracked_services", "其中为困境人群提供跟踪服务人次", "of which tracked services"),
            Line("referrals", "转介援助", "referrals to aid"),
        ],
    ),
    (
        "抗疫救援服务网",
        "Rescue service net (aid)",
        [
            Line(
                "aid_actions", "开展送医、送药、送口罩、送救助等紧急援助", "emergency aid actions"
            ),
            Line("aid_persons_served", "服务人次", "persons served"),
            Line("aid_requests_open", "待处理的援助请求", "aid requests open now"),
            Line("referrals_to_aid", "由热线转介而来的援助请求", "requests from hotline referrals"),
            Line("emergency_cases", "突发重病、摔伤等紧急个案", "emergency cases"),
        ],
    ),
    (
        "慈善力量群防网",
        "Charity mass-prevention net (donation)",
        [
            Line("donated_items", "链接捐赠物资（件）", "donated goods linked (items)"),
            Line("donated_value_yuan", "物资价值（元）", "their value (CNY)"),
            Line("funds_raised_yuan", "筹款（元）", "money raised (CNY)"),
            Line("volunteers_linked", "链接志愿者人次", "volunteers linked"),
            Line("distributions", "物资发放次数", "distributions"),
            Line("stock_shortfalls", "库存不足记录", "stock shortfalls"),
        ],
    ),
    (
        "社区抗疫自助网",
        "Community self-help net",
        [
            Line("project_outputs", "自助项目产出记录", "self-help project outputs"),
            Line("project_beneficiaries", "受益人次", "beneficiaries"),
            Line("project_income_yuan", "助农收入（元）", "income for farmers (CNY)"),
        ],
    ),
]


def report(as_of: date | str, totals: Mapping[str, int]) -> dict[str, object]:
    """The report as JSON: ``as_of``, ``figures`` (the stable core and more) and the nets'
    paragraphs with their Chinese and English wording."""
    values = figures(totals)
    return {
        "as_of": as_of if isinstance(as_of, str) else as_of.isoformat(),
        "figures": values,
        "nets": [
            {
                "zh": zh,
                "en": en,
                "lines": [
                    {
                        "figure": line.figure,
                        "zh": line.zh,
                        "en": line.en,
                        "value": values[line.figure],
                    }
                    for line in lines
                ],
            }
            for zh, en, lines in PARAGRAPHS
        ],
    }


def revision_view(revision: Mapping[str, Any]) -> dict[str, object]:
    """A stored revision (`fold.Revision`) as `/api/revisions` lists it, with the reported
    figures it changed (what a reader of the report sees move), zeros left out."""
    by_metric: dict[str, int] = {}
    for _, metric, change in revision["changes"]:
        by_metric[metric] = by_metric.get(metric, 0) + change
    moved = {name: value for name, value in figures(by_metric).items() if value not in (0, "0.00")}
    return {
        "event_id": revision["event_id"],
        "type": revision["type"],
        "source": revision["source"],
        "fact": revision["fact"],
        "recorded_at": revision["recorded_at"],
        "actor": revision["actor"],
        "reason": revision["reason"],
        "days": sorted({day for day, _, _ in revision["changes"]}),
        "figures": moved,
        "changes": [list(change) for change in revision["changes"]],
    }


def differences(mine: Mapping[str, object], theirs: Mapping[str, object]) -> list[str]:
    """Every figure on which two reports disagree, one line each."""
    out = []
    for name in sorted(set(mine) | set(theirs)):
        a, b = mine.get(name), theirs.get(name)
        if a != b:
            out.append(f"{name}: replay {a!r} != live {b!r}")
    return out
