"""Schemathesis hooks (SCHEMATHESIS_HOOKS=st_hooks): what the OpenAPI documents say in words
and JSON Schema cannot, so that data the documents call valid is valid.

- Business time lies in a window that moves: from the start of records (2020-01-01 in
  Guangzhou, the default of KAPOK_RECORDS_START) to now. Generated instants and days stay
  inside it.
- An Idempotency-Key names one request: reused with another body it is refused (422, as the
  IETF draft says). Each generated request that is meant to be valid gets a key of its own.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import schemathesis
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

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
    return case


@schemathesis.hook
def filter_body(context: schemathesis.HookContext, body: object) -> bool:
    """A campaign's ``ends_on`` is on or after its ``starts_on`` (its description says so; JSON
    Schema cannot compare two fields)."""
    if context.operation is None or context.operation.path != "/campaigns":
        return True
    if not isinstance(body, dict) or not body.get("ends_on") or not body.get("starts_on"):
        return True
    return bool(str(body["ends_on"]) >= str(body["starts_on"]))
