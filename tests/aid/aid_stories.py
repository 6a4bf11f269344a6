"""The people and places of the aid stories: 卫姨, the Nanzhou street station and its couriers."""

from __future__ import annotations

from typing import Any

from harness.stories import at

from shared.contracts.refs import person_ref
from shared.contracts.types import Place

NANZHOU = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
WEI_YI = person_ref("7f3a9c")  # 卫姨: a disabled woman living alone, as the bus knows her
WORKER = "worker:w17"
VOLUNTEER = "volunteer:v3"


def place() -> dict[str, str]:
    return NANZHOU.model_dump()


def request_body(minute: int = 0, **changes: object) -> dict[str, Any]:
    body: dict[str, Any] = {
        "person": WEI_YI,
        "group": "disabled",
        "place": place(),
        "needs": ["medicine", "food"],
        "urgency": "today",
        "origin": "station_visit",
        "requested_at": at(minute).isoformat(),
    }
    body.update(changes)
    return body


MEDICINE = {"kind": "medicine", "quantity": "2", "unit": "box", "value_yuan": "56.50"}
VEGETABLES = {"kind": "vegetables", "quantity": "1.5", "unit": "kg"}


def delivery_body(minute: int = 90, **changes: object) -> dict[str, Any]:
    """卫姨's delivery: medicine and fresh vegetables, to one person."""
    body: dict[str, Any] = {
        "items": [MEDICINE, VEGETABLES],
        "persons_served": 1,
        "delivered_at": at(minute).isoformat(),
    }
    body.update(changes)
    return body
