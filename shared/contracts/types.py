"""Field types every event contract is built from.

People never appear on the bus: only opaque references (`Ref`) and coarse attributes
(vulnerable group, district, station). Money is exact: `Yuan` is a Decimal with two places,
serialised as a string, and a float is refused because it has already lost the fen.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

Count = Annotated[int, Field(ge=0, strict=True)]
PositiveCount = Annotated[int, Field(ge=1, strict=True)]


def _refuse_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError("money must be a decimal string or an integer, never a float")
    if isinstance(value, int | str) and not isinstance(value, bool):
        return Decimal(value)
    return value


def _two_places(value: Decimal) -> Decimal:
    if not value.is_finite():
        raise ValueError("money must be a finite amount")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError("money has at most two decimal places (fen)")
    return value.quantize(Decimal("0.01"))


Yuan = Annotated[
    Decimal,
    BeforeValidator(_refuse_float),
    Field(ge=0, strict=True, json_schema_extra={"type": "string", "format": "decimal"}),
    AfterValidator(_two_places),
]
"""An exact, non-negative amount in yuan with two places, e.g. ``"355994.00"``."""

Quantity = Annotated[
    Decimal,
    BeforeValidator(_refuse_float),
    Field(gt=0, strict=True, json_schema_extra={"type": "string", "format": "decimal"}),
]
"""A positive quantity of goods in its unit (items, kg, jin, packs); exact, like money."""

Ref = Annotated[
    str,
    Field(
        min_length=3,
        max_length=64,
        pattern=r"^[a-z][a-z0-9-]*:[A-Za-z0-9._-]+$",
        strict=True,
    ),
]
"""An opaque reference such as ``person:7f3a9c`` or ``station:nanzhou``: never a name."""

Actor = Annotated[
    str,
    Field(
        max_length=64,
        pattern=r"^(system|(worker|volunteer|service):[A-Za-z0-9._-]+)$",
        strict=True,
    ),
]
"""Who did it: ``worker:<ref>``, ``volunteer:<ref>``, ``service:<name>`` or ``system``."""

Label = Annotated[str, Field(min_length=1, max_length=120, strict=True)]
"""A short label for a thing, never a person (a campaign's or organisation's name)."""

Instant = Annotated[datetime, Field(strict=False)]

Group = Literal["elderly_alone", "disabled", "low_income", "child", "general"]
VulnerableGroup = Literal["elderly_alone", "disabled", "low_income", "child"]

District = Literal[
    "yuexiu",
    "haizhu",
    "liwan",
    "tianhe",
    "baiyun",
    "huangpu",
    "panyu",
    "huadu",
    "nansha",
    "conghua",
    "zengcheng",
]
DISTRICTS_ZH: dict[str, str] = {
    "yuexiu": "越秀",
    "haizhu": "海珠",
    "liwan": "荔湾",
    "tianhe": "天河",
    "baiyun": "白云",
    "huangpu": "黄埔",
    "panyu": "番禺",
    "huadu": "花都",
    "nansha": "南沙",
    "conghua": "从化",
    "zengcheng": "增城",
}


class Contract(BaseModel):
    """Base of every event payload and command: strict, closed and immutable."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        ser_json_timedelta="iso8601",
    )


class Place(Contract):
    """Where something happened, coarse enough to name no one."""

    district: District
    street: Label = Field(description="street (街道) or town (镇)")
    station: Ref = Field(description="social-work station reference, e.g. station:nanzhou")
    organisation: Ref = Field(description="organisation running the station")
