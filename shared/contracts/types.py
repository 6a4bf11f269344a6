"""Field types every event contract is built from.

People never appear on the bus: only opaque references (`Ref`) and coarse attributes
(vulnerable group, district, station). Money is exact: `Yuan` is a Decimal with two places,
serialised as a string, and a float is refused because it has already lost the fen.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

Count = Annotated[int, Field(ge=0, strict=True)]
PositiveCount = Annotated[int, Field(ge=1, strict=True)]


def _refuse_float(value: Any) -> Any:
    if isinstance(value, float):
        raise ValueError(
            "must be a decimal string or an integer, never a float (it has lost exactness)"
        )
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
    Field(ge=0, strict=True),
    AfterValidator(_two_places),
    # The schema describes the bytes on the bus (for the AsyncAPI document), not the inputs.
    WithJsonSchema(
        {
            "type": "string",
            "format": "decimal",
            "pattern": r"^[0-9]+\.[0-9]{2}$",
            "description": "exact yuan with two places, e.g. 355994.00",
        }
    ),
]
"""An exact, non-negative amount in yuan with two places, e.g. ``"355994.00"``."""

Quantity = Annotated[
    Decimal,
    BeforeValidator(_refuse_float),
    Field(gt=0, strict=True),
    WithJsonSchema({"type": "string", "format": "decimal", "description": "exact, above zero"}),
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


# Added with the service contracts. Shared by more than one source's events, so spelled once.

Stock = Annotated[
    Decimal,
    BeforeValidator(_refuse_float),
    Field(ge=0, strict=True),
    WithJsonSchema({"type": "string", "format": "decimal", "description": "exact, zero or more"}),
]
"""A non-negative quantity (what a campaign still held): zero is a real answer here."""

Unit = Literal[
    "piece",  # 件 / 个: masks, bottles counted one by one
    "box",
    "pack",  # 份 / 包: love packs, parcels
    "meal",  # 份: the warm lunches
    "head",  # 只: chickens
    "device",  # 台: phones and tablets
    "kg",
    "jin",  # 斤 (0.5 kg): how produce is sold in Guangzhou
    "trip",  # 次: an escort to hospital
    "payment",  # 笔: relief cash handed over (its amount is in value_yuan)
]
"""Units are codes, not text: a campaign's stock is kept per (kind, unit), and "kg" and "KG"
must never become two stocks."""

GoodsKind = Literal[
    "medicine",
    "food",
    "vegetables",
    "meals",
    "poultry",
    "masks",
    "protective_supplies",
    "care_packs",
    "devices",
    "other",
]
"""What a donation campaign can hold in stock and hand out."""

AidKind = Literal[GoodsKind, "escort", "relief_cash"]
"""What one aid delivery item is: any goods kind (so goods drawn from a campaign keep the
campaign's kind), or one of the two services that are not goods: escort (送医) and relief cash
(送救助)."""

NON_GOODS_AID: frozenset[str] = frozenset(get_args(AidKind)) - frozenset(get_args(GoodsKind))

Need = Literal["medicine", "food", "masks", "escort_to_hospital", "relief", "other"]
"""What a person in hardship needs, as a hotline referral or an aid request states it."""

Urgency = Literal["emergency", "today", "within_days"]


def _distinct(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError("values must not repeat")
    return values


Needs = Annotated[tuple[Need, ...], Field(min_length=1, max_length=6), AfterValidator(_distinct)]
Districts = Annotated[
    tuple[District, ...], Field(min_length=1, max_length=11), AfterValidator(_distinct)
]


class Item(Contract):
    """A line of donated goods: ``value_yuan`` is the whole line's value, where known."""

    kind: GoodsKind
    quantity: Quantity
    unit: Unit
    value_yuan: Yuan | None = None


class AidItem(Contract):
    """A line of one aid delivery. ``campaign`` names the donation campaign the goods came
    from; the donation service then draws them from that campaign's stock."""

    kind: AidKind
    quantity: Quantity
    unit: Unit
    value_yuan: Yuan | None = None
    campaign: Ref | None = None

    @model_validator(mode="after")
    def _campaign_holds_goods_only(self) -> AidItem:
        # A campaign's stock is goods; an escort or cash handed out has nothing to draw from.
        if self.campaign is not None and self.kind in NON_GOODS_AID:
            raise ValueError(f"campaign: a {self.kind} item cannot come from a campaign's stock")
        return self
