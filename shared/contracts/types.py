"""Field types every event contract is built from.

People never appear on the bus: only opaque references (`Ref`) and coarse attributes
(vulnerable group, district, station). Money is exact: `Yuan` is a Decimal with two places,
serialised as a string, and a float is refused because it has already lost the fen.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)

# The bounds of every number a record carries. docs/bounds.md says why each is what it is, and
# why any record inside them folds exactly: reporting's counters are 64-bit integers of units,
# fen (money) and thousandths (quantities).
MAX_YUAN = Decimal("99999999.99")  # under a hundred million yuan in one record or goods line
MAX_QUANTITY = Decimal("9999999.999")  # under ten million units in one line, to the thousandth
MAX_CALL_SECONDS = 86_400  # a call is over within a day
MAX_SHIFT_MINUTES = 10_080  # a shift on the line lasts at most a week
MAX_PERSONS = 10_000  # persons one aid action serves: a household, at most a compound
MAX_VOLUNTEERS = 10_000  # volunteer person-times in one link (the whole of 2020: 1,864)
MAX_RECIPIENTS = 100_000  # households, stations or people one distribution or output reaches


def _whole(value: Any) -> Any:
    # JSON Schema's integers include 264.0; a float that is a whole number below 2**53 is
    # exact, so it is taken as the integer it is. Any other float stays refused.
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


# The bounds first: the validator after them wraps them (runs before), and they stay in the
# JSON schema as minimum and maximum.
Whole = BeforeValidator(_whole)
CallSeconds = Annotated[int, Field(ge=0, le=MAX_CALL_SECONDS, strict=True), Whole]
ShiftMinutes = Annotated[int, Field(ge=0, le=MAX_SHIFT_MINUTES, strict=True), Whole]
Persons = Annotated[int, Field(ge=1, le=MAX_PERSONS, strict=True), Whole]
Volunteers = Annotated[int, Field(ge=1, le=MAX_VOLUNTEERS, strict=True), Whole]
Recipients = Annotated[int, Field(ge=1, le=MAX_RECIPIENTS, strict=True), Whole]


def decimal_pattern(digits: int, places: int, *, positive: bool) -> str:
    """The decimal strings of at most ``digits`` whole digits and ``places`` places (no sign,
    exponent or leading zero), above zero if ``positive``: what a client may send."""
    fraction = rf"(\.[0-9]{{1,{places}}})?"
    whole = rf"[1-9][0-9]{{0,{digits - 1}}}"
    if not positive:
        return rf"^(0|{whole}){fraction}$"
    # 0.5, 0.05, 0.005: a fraction that is not all zeros, its first non-zero digit at i.
    small = "|".join("0" * i + f"[1-9][0-9]{{0,{places - 1 - i}}}" for i in range(places))
    return rf"^({whole}{fraction}|0\.({small}))$"


def _exact(highest: Decimal, *, positive: bool, example: str, on_the_bus: str) -> tuple[Any, ...]:
    """The metadata of an exact decimal type up to ``highest`` (all nines), for
    ``Annotated[Decimal, *_exact(...)]``: the input check (in JSON a decimal string as the
    pattern says, never a number, which may have lost exactness, and never "", "abc", "1e30" or
    "NaN", which `Decimal` would take or choke on; in Python also an integer or a Decimal),
    the bounds, the places check (for values made in Python), and the JSON schemas of the
    input and of the bus's bytes."""
    whole, _, fraction = str(highest).partition(".")
    digits, places = len(whole), len(fraction)
    pattern = decimal_pattern(digits, places, positive=positive)
    matches = re.compile(pattern).fullmatch
    least = "above 0" if positive else "from 0"
    rule = f"a decimal string with at most {places} places, {least} to {highest}, e.g. {example}"

    def parse(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            if not matches(value):
                raise ValueError(f"must be {rule}")
            return Decimal(value)
        if info.mode == "json":
            # In JSON a number is refused whatever it is: 3100.0 and 3100 are one number to
            # JSON Schema, and a float has already lost exactness.
            raise ValueError(f"must be {rule}, a string, never a number")
        if isinstance(value, float):
            raise ValueError(f"must be {rule}, never a float (it has lost exactness)")
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)  # made in Python: an integer is exact
        return value

    def within_places(value: Decimal) -> Decimal:
        if not value.is_finite() or value != round(value, places):
            raise ValueError(f"must be {rule}")
        return value

    schema = {
        "type": "string",
        "pattern": pattern,
        "maxLength": digits + 1 + places,
        "description": rule,
    }
    bus = {"type": "string", "format": "decimal", "description": on_the_bus}
    return (
        BeforeValidator(parse),
        Field(gt=0, le=highest, strict=True) if positive else Field(ge=0, le=highest, strict=True),
        AfterValidator(within_places),
        WithJsonSchema(schema, mode="validation"),
        WithJsonSchema(bus, mode="serialization"),
    )


def _two_places(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


_YUAN_ON_THE_BUS = "exact yuan with two places, e.g. 355994.00"
Yuan = Annotated[
    Decimal,
    *_exact(MAX_YUAN, positive=False, example="355994.00", on_the_bus=_YUAN_ON_THE_BUS),
    AfterValidator(_two_places),
]
"""An exact amount in yuan with two places, from 0 to `MAX_YUAN`, e.g. ``"355994.00"``."""

PositiveYuan = Annotated[
    Decimal,
    *_exact(MAX_YUAN, positive=True, example="136210.00", on_the_bus=_YUAN_ON_THE_BUS),
    AfterValidator(_two_places),
]
"""Money that came or was promised: above zero."""

Quantity = Annotated[
    Decimal, *_exact(MAX_QUANTITY, positive=True, example="2.5", on_the_bus="exact, above zero")
]
"""A positive quantity of goods in its unit (items, kg, jin, packs), exact to the thousandth
(a gram of a kilogram) and under `MAX_QUANTITY`."""

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
        pattern=r"^(system|(worker|volunteer|service|user):[A-Za-z0-9._-]+)$",
        strict=True,
    ),
]
"""Who did it: ``worker:<ref>``, ``volunteer:<ref>``, ``service:<name>``, ``user:<id>`` (a
signed-in principal: `shared.auth`) or ``system``."""

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


def _place_checked(place: Place) -> Place:
    # Both build on this module.
    from shared.contracts.places import refusal
    from shared.contracts.text import personal_number

    if (found := personal_number(place.street)) is not None:
        raise ValueError(f"street must not hold {found}: a street is 街道 or 镇, never an address")
    if (why := refusal(place.district, place.street, place.station)) is not None:
        raise ValueError(why)
    return place


def _catalogue_schema() -> dict[str, Any]:
    """The places a command may name, as its document says them: one of the catalogue's."""
    from shared.contracts.places import STATIONS

    organisation = Place.model_json_schema()["properties"]["organisation"]
    return {
        "description": "a station of Kapok's catalogue, with its street and district "
        "(README, 'Personal data': places come from the catalogue)",
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "district": {"const": s.district},
                    "street": {"const": s.street},
                    "station": {"const": s.ref},
                    "organisation": organisation,
                },
                "required": ["district", "street", "station", "organisation"],
                "additionalProperties": False,
            }
            for s in sorted(STATIONS.values(), key=lambda s: s.ref)
        ],
    }


class _CatalogueSchema:
    """The catalogue's schema, made when a document is (after KAPOK_PLACES_FILE is read)."""

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        return _catalogue_schema()


GivenPlace = Annotated[Place, AfterValidator(_place_checked), _CatalogueSchema()]
"""A place as a command gives it: a district, street and station of Kapok's catalogue
(`shared.contracts.places`), never a phone or ID-card number."""


# Added with the service contracts. Shared by more than one source's events, so spelled once.

Stock = Annotated[
    Decimal, *_exact(MAX_QUANTITY, positive=False, example="0", on_the_bus="exact, zero or more")
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


_DISTINCT = {"uniqueItems": True}
Needs = Annotated[
    tuple[Need, ...],
    Field(min_length=1, max_length=6, json_schema_extra=_DISTINCT),
    AfterValidator(_distinct),
]
Districts = Annotated[
    tuple[District, ...],
    Field(min_length=1, max_length=11, json_schema_extra=_DISTINCT),
    AfterValidator(_distinct),
]


def given(field: str) -> dict[str, Any]:
    """JSON Schema: ``field`` is there and not null."""
    return {"required": [field], "properties": {field: {"not": {"type": "null"}}}}


def both_or_neither(a: str, b: str) -> dict[str, Any]:
    """JSON Schema: ``a`` and ``b`` are both given, or neither is (absent or null)."""
    neither = {"properties": {a: {"type": "null"}, b: {"type": "null"}}}
    return {"anyOf": [neither, {"allOf": [given(a), given(b)]}]}


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

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"kind": {"enum": sorted(get_args(GoodsKind))}}},
                {"properties": {"campaign": {"type": "null"}}},
            ]
        }
    )

    @model_validator(mode="after")
    def _campaign_holds_goods_only(self) -> AidItem:
        # A campaign's stock is goods; an escort or cash handed out has nothing to draw from.
        if self.campaign is not None and self.kind in NON_GOODS_AID:
            raise ValueError(f"campaign: a {self.kind} item cannot come from a campaign's stock")
        return self
