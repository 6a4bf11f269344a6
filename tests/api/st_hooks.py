"""Schemathesis hooks (SCHEMATHESIS_HOOKS=st_hooks): what the OpenAPI documents say in words
and JSON Schema cannot, so that data the documents call valid is valid.

- Business time lies in a window that moves: from the start of records (2020-01-01 in
  Guangzhou, the default of KAPOK_RECORDS_START) to now. Generated instants and days stay
  inside it.
- A place is one of Kapok's catalogue (its station names its street and district), a person
  a reference Kapok issued (the pattern, and a check in its last characters), and free text
  holds no phone or ID-card number: generated valid bodies are made so.
- An Idempotency-Key names one request: reused with another body it is refused (422, as the
  IETF draft says). Each generated request that is meant to be valid gets a key of its own.
"""

from __future__ import annotations

import re
import uuid
import zlib
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from shared.contracts import places
from shared.contracts.refs import person_ref
from shared.contracts.text import personal_number

GUANGZHOU = timezone(timedelta(hours=8))
START = datetime(2020, 1, 1, 8, 0)  # naive UTC: midnight in Guangzhou on the first day


def _instants() -> st.SearchStrategy[str]:
    latest = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=10)
    moments = st.datetimes(min_value=START, max_value=latest, timezones=st.just(UTC))
    return moments.map(lambda m: m.astimezone(GUANGZHOU).isoformat())


schemathesis.openapi.format("date-time", _instants())
schemathesis.openapi.format(
    "date", st.dates(date(2020, 1, 1), date.today()).map(lambda d: d.isoformat())
)


@schemathesis.hook
def map_case(context: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
    positive = case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE
    if positive and case.headers and "Idempotency-Key" in case.headers:
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    if positive and case.body is not None:
        case.body = as_documented(case.body)
    return case


PLACE_KEYS = {"district", "street", "station", "organisation"}
PEOPLE = {"person", "caller"}
STATIONS = sorted(places.STATIONS.values(), key=lambda s: s.ref)


def as_documented(value: Any, key: str = "") -> Any:
    """What the descriptions say in words: a place is one of the catalogue's (its station
    names its street and district), a person a reference Kapok issued (the pattern, and a
    check in its last 4 characters), and free text holds no phone or ID-card number."""
    if isinstance(value, dict):
        if value.keys() >= PLACE_KEYS and isinstance(value.get("station"), str):
            station = STATIONS[zlib.crc32(value["station"].encode()) % len(STATIONS)]
            value = {**value, "district": station.district, "street": station.street,
                     "station": station.ref}  # fmt: skip
        return {k: as_documented(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [as_documented(v, key) for v in value]
    if isinstance(value, str):
        if key in PEOPLE and value.startswith("person:"):
            return person_ref(value)
        if personal_number(value) is not None:
            return re.sub(r"[0-9０-９]", "x", value)
    return value


@schemathesis.hook
def filter_body(context: schemathesis.HookContext, body: object) -> bool:
    """A campaign's ``ends_on`` is on or after its ``starts_on`` (its description says so; JSON
    Schema cannot compare two fields)."""
    if context.operation is None or context.operation.path != "/campaigns":
        return True
    if not isinstance(body, dict) or not body.get("ends_on") or not body.get("starts_on"):
        return True
    return bool(str(body["ends_on"]) >= str(body["starts_on"]))
