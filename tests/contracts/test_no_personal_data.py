"""No event can carry personal data: no field is named like one, and no field can hold free
text, because free text is where a name, a phone number or an address gets typed in.

The walker reads each model's JSON schema rather than its Python annotations: the schema is
what goes on the bus, and it has already unwrapped Annotated, Optional, tuples and nested
models into one shape to check.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from shared.contracts import REGISTRY
from shared.contracts.corrections import REASON_MAX, Voiding
from shared.contracts.hotline import HotlineEvent
from shared.contracts.text import NoPersonalNumbers
from shared.contracts.types import Contract, Label, Ref

# Parts of a field name that mean a person's identity or contact details. Matched anywhere in
# the name with underscores removed, so caller_name, callerName, home_address, id_card and
# wechat_id all match. There are deliberately no exceptions for "name": a campaign's name is
# its `title` and an organisation is a Ref, so the rule needs no allow-list for a
# `caller_name` to slip through on review.
IDENTIFYING = (
    "name",
    "phone",
    "mobile",
    "addr",  # address, street_address, addr
    "mail",  # email, e_mail
    "idcard",
    "idnumber",
    "identity",
    "passport",
    "wechat",
    "weixin",
    "contact",
    "birth",
    "household_register",
    "hukou",
    "licence",
    "plate",
    "gps",
    "latitude",
    "longitude",
    "coord",
    "remark",
    "comment",
    "note",
    "freetext",
)
# Short words that are only suspicious as a whole word of the name (tel, not hotel).
IDENTIFYING_WORDS = {"tel", "qq", "dob", "age", "sex", "gender", "room", "door", "text", "msg"}

VOIDS = [t for t in REGISTRY.types() if issubclass(t, Voiding)]

# Free strings (no code list, no pattern, no format) that are allowed, by (model, field).
# Each names a place or a campaign, never a person:
FREE_TEXT_ALLOWED = frozenset(
    {
        # A street (街道) or town (镇) is an administrative area of tens of thousands of
        # residents, as coarse as a district for identifying anyone. The type is still a free
        # label, so a careless service could type a house address into it: the services must
        # fill it from their list of streets, never from user input.
        ("Place", "street"),
        # The public name of a campaign or self-help project, e.g. 暖心午餐.
        ("CampaignLaunched", "title"),
        # Why a fact was voided ("logged twice"), typed by a coordinator: short (its length
        # is bounded, see the test below) and shown to auditors beside the figures.
        *((void.__name__, "reason") for void in VOIDS),
    }
)
# Strings that are constrained enough to hold no free text: code lists, patterns (Ref),
# and formats whose values are times, ids or numbers.
CODED_FORMATS = {"date-time", "date", "uuid", "decimal"}


def findings(
    model: type[BaseModel], allowed: frozenset[tuple[str, str]] = FREE_TEXT_ALLOWED
) -> list[str]:
    """Every field of ``model`` and its nested models that could hold personal data."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    found: list[str] = []
    seen: set[str] = set()

    def walk_model(node: dict[str, Any]) -> None:
        owner = node.get("title", "?")
        if owner in seen:
            return
        seen.add(owner)
        if node.get("additionalProperties") not in (None, False):
            found.append(f"{owner}: accepts undeclared fields")
        for field, field_schema in node.get("properties", {}).items():
            squashed = field.lower().replace("_", "")
            words = set(re.split(r"_+", field.lower()))
            if any(part.replace("_", "") in squashed for part in IDENTIFYING) or (
                words & IDENTIFYING_WORDS
            ):
                found.append(f"{owner}.{field}: named like personal data")
            walk_value(owner, field, field_schema)

    def walk_value(owner: str, field: str, node: dict[str, Any]) -> None:
        if "$ref" in node:
            walk_model(defs[node["$ref"].split("/")[-1]])
            return
        for key in ("anyOf", "oneOf", "allOf"):
            for option in node.get(key, ()):
                walk_value(owner, field, option)
        if any(key in node for key in ("anyOf", "oneOf", "allOf")):
            return
        kind = node.get("type")
        if kind == "array":
            items = node.get("prefixItems", []) + ([node["items"]] if "items" in node else [])
            if not items:
                found.append(f"{owner}.{field}: a list of anything")
            for item in items:
                walk_value(owner, field, item)
        elif kind == "object":
            if "properties" in node:
                walk_model(node)
            else:
                found.append(f"{owner}.{field}: a free-form object")
        elif kind == "string":
            coded = (
                "enum" in node
                or "const" in node
                or "pattern" in node
                or node.get("format") in CODED_FORMATS
            )
            if not coded and (owner, field) not in allowed:
                found.append(f"{owner}.{field}: free text")
        elif kind is None and "enum" not in node and "const" not in node:
            found.append(f"{owner}.{field}: untyped, could hold anything")

    walk_model(schema)
    return found


def test_no_event_can_carry_personal_data() -> None:
    problems = [problem for model in REGISTRY.types() for problem in findings(model)]
    assert problems == [], "\n".join(problems)


def test_the_free_text_allow_list_is_all_still_needed() -> None:
    # An allow-list entry nobody uses any more is a hole waiting for a new field to fill it.
    free = {
        tuple(problem.removesuffix(": free text").split("."))
        for model in REGISTRY.types()
        for problem in findings(model, allowed=frozenset())
        if problem.endswith(": free text")
    }
    assert free == FREE_TEXT_ALLOWED


def test_a_void_s_reason_is_short() -> None:
    # The one free text a void carries: bounded, so a case history cannot be pasted into it.
    for void in VOIDS:
        assert void.model_json_schema()["properties"]["reason"]["maxLength"] == REASON_MAX <= 200


def test_the_envelope_carries_no_personal_data_either() -> None:
    envelope = REGISTRY.envelope_model(REGISTRY["CallReceived"])
    # Written by the store, never typed by a user: the aggregate's id and the producing
    # service's name. They would be better as patterns or codes; until then, allowed.
    by_the_store = {("CallReceivedEnvelope", "stream_id"), ("CallReceivedEnvelope", "source")}
    problems = findings(envelope, allowed=FREE_TEXT_ALLOWED | by_the_store)
    assert problems == [], "\n".join(problems)


class Caller(Contract):
    full_name: Label
    home: str
    district: Literal["haizhu"]


class LeakyCall(HotlineEvent):
    """Deliberately bad, and never registered: what the walker exists to catch."""

    call: Ref
    phone: Ref
    caller: Caller
    notes: tuple[str, ...]
    extras: dict[str, str]
    age: int
    summary: str


def test_the_walker_catches_a_leaky_event() -> None:
    assert "LeakyCall" not in REGISTRY
    assert sorted(findings(LeakyCall)) == sorted(
        [
            "LeakyCall.phone: named like personal data",
            "Caller.full_name: named like personal data",
            "Caller.full_name: free text",
            "Caller.home: free text",
            "LeakyCall.notes: named like personal data",
            "LeakyCall.notes: free text",
            "LeakyCall.extras: a free-form object",
            "LeakyCall.age: named like personal data",
            "LeakyCall.summary: free text",
        ]
    )


# -- commands: what a person types in ----------------------------------------------------


def command_models() -> list[type[BaseModel]]:
    """Every command the hotline, aid and donation services take (the people service's
    exist to carry contact details, encrypted at rest: README "Personal data")."""
    from services.aid.application.commands import COMMANDS as AID
    from services.donation.application.commands import COMMANDS as DONATION
    from services.hotline.application.commands import COMMANDS as HOTLINE

    return [*HOTLINE.values(), *AID.values(), *DONATION.values()]


def test_a_command_names_people_only_by_the_references_kapok_issues() -> None:
    from shared.contracts.refs import PersonRef

    issued = TypeAdapter(PersonRef).json_schema()["pattern"]
    people = {"person", "caller"}
    named = [
        (model.__name__, field, schema)
        for model in command_models()
        for field, schema in model.model_json_schema().get("properties", {}).items()
        if field in people
    ]
    assert named, "the walk found no person at all"
    wrong = [
        f"{model}.{field}"
        for model, field, schema in named
        if issued not in json.dumps(schema)  # directly, or in anyOf [PersonRef, null]
    ]
    assert wrong == []


def test_a_command_s_free_text_refuses_personal_numbers() -> None:
    free = {
        (model.__name__, problem.removesuffix(": free text").split(".")[1])
        for model in command_models()
        for problem in findings(model, allowed=frozenset())
        if problem.endswith(": free text") and problem.startswith(model.__name__ + ".")
    }
    assert free, "the walk found no free text at all"
    unchecked = [
        f"{owner}.{field}"
        for owner, field in sorted(free)
        if NoPersonalNumbers not in _model(owner).model_fields[field].metadata
    ]
    assert unchecked == []


def _model(name: str) -> type[BaseModel]:
    return next(m for m in command_models() if m.__name__ == name)


def test_a_command_s_place_is_one_of_the_catalogue() -> None:
    placed = [
        (model.__name__, schema)
        for model in command_models()
        for field, schema in model.model_json_schema().get("properties", {}).items()
        if field == "place"
    ]
    assert placed
    for owner, schema in placed:
        options = json.dumps(schema)
        assert '"station": {"const": "station:nanzhou"}' in options, owner
