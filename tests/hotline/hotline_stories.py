"""The people and places of the hotline stories: 卫姨 and the Nanzhou street station."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from shared.contracts.refs import person_ref
from shared.contracts.types import Place

CST = timezone(timedelta(hours=8), "Asia/Shanghai")
NANZHOU = Place(
    district="haizhu", street="南洲街", station="station:nanzhou", organisation="org:haizhu-sw"
)
WEI_YI = person_ref("7f3a9c")  # 卫姨: a disabled woman living alone, as the bus knows her
WORKER = "worker:w17"
MORNING = datetime(2020, 2, 10, 9, 0, tzinfo=CST)


def at(minutes: int) -> datetime:
    """Business time: minutes after 09:00 on 2020-02-10 in Guangzhou."""
    return MORNING + timedelta(minutes=minutes)


def place() -> dict[str, str]:
    return NANZHOU.model_dump()


def call_body(point: str, minute: int = 5, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "point": point,
        "category": "help_request",
        "group": "disabled",
        "channel": "phone",
        "caller": WEI_YI,
        "received_at": at(minute).isoformat(),
    }
    body.update(changes)
    return body
