"""The campaigns of the donation stories: the warm lunches (暖心午餐) for front-line workers in
Yuexiu, Tianhe, Haizhu and Liwan, the Guangzhou–Qingyuan produce to households, and the
城郊街 farm produce sold for poor farmers (a self-help project)."""

from __future__ import annotations

from typing import Any

from harness.stories import at

ORG = "org:gz-sw-association"
LIAISON = "worker:liaison-3"


def campaign_body(minute: int = 0, **changes: object) -> dict[str, Any]:
    """The warm lunches: a charity campaign in four districts, for one week."""
    body: dict[str, Any] = {
        "campaign_kind": "charity",
        "organisation": ORG,
        "title": "暖心午餐 warm lunches",
        "districts": ["yuexiu", "tianhe", "haizhu", "liwan"],
        "starts_on": "2020-02-10",
        "ends_on": "2020-02-16",
        "launched_at": at(minute).isoformat(),
    }
    body.update(changes)
    return body


def produce_body(minute: int = 0, **changes: object) -> dict[str, Any]:
    """The Guangzhou–Qingyuan produce: vegetables and chickens to households in hardship."""
    return campaign_body(
        minute,
        title="穗清农产品 Guangzhou-Qingyuan produce",
        districts=["haizhu", "baiyun"],
        starts_on="2020-02-10",
        ends_on=None,
        **changes,
    )


def farm_body(minute: int = 0, **changes: object) -> dict[str, Any]:
    """城郊街 residents selling farm produce for poor farmers: a self-help project."""
    return campaign_body(
        minute,
        campaign_kind="self_help",
        organisation="org:chengjiao-station",
        title="城郊街 助农 farm produce",
        districts=["conghua"],
        ends_on=None,
        **changes,
    )


LUNCHES = {"kind": "meals", "quantity": "500", "unit": "meal", "value_yuan": "12500.00"}
VEGETABLES = {"kind": "vegetables", "quantity": "300", "unit": "kg", "value_yuan": "2400.00"}
CHICKENS = {"kind": "poultry", "quantity": "100", "unit": "head", "value_yuan": "8000.00"}


def receipt_body(minute: int = 10, **changes: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "items": [LUNCHES],
        "donor_kind": "company",
        "district": "yuexiu",
        "received_at": at(minute).isoformat(),
    }
    body.update(changes)
    return body


def distribution_body(minute: int = 60, quantity: str = "200", **changes: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "items": [{"kind": "meals", "quantity": quantity, "unit": "meal"}],
        "recipient_kind": "people",
        "recipients": int(quantity),
        "district": "yuexiu",
        "station": "station:beijing-road",
        "distributed_at": at(minute).isoformat(),
    }
    body.update(changes)
    return body
