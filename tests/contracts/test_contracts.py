"""The event contracts as stories: what is refused, what survives the bus, and what an auditor
can prove."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from shared.contracts import (
    GENESIS,
    REGISTRY,
    BrokenChain,
    Event,
    UndecodableEvent,
    uuid7,
    verify_link,
)
from shared.contracts.aid import AidAssigned, AidDelivered, AidRequested
from shared.contracts.donation import FundsReceived, StockShortfallRecorded
from shared.contracts.envelope import seal
from shared.contracts.hotline import CallCompleted, FollowUpScheduled, HotlineEvent
from shared.contracts.registry import EventRegistry
from shared.contracts.types import AidItem, CallSeconds, Ref

Body = dict[str, Any]


def fields_of(example: Event, **changes: Any) -> dict[str, Any]:
    return {**dict(example), **changes}


def refused(model: type[Event], **fields: Any) -> str:
    with pytest.raises(ValidationError) as caught:
        model(**fields)
    return str(caught.value)


def decode_refused(body: Body) -> str:
    with pytest.raises(UndecodableEvent) as caught:
        REGISTRY.decode(seal(body))
    return str(caught.value)


# -- strictness ------------------------------------------------------------------------------


def test_an_unknown_field_is_refused_by_name(examples: dict[str, Event], make_body) -> None:
    call = examples["CallReceived"]
    assert "caller_phone" in refused(type(call), **fields_of(call, caller_phone="13800000000"))

    body = make_body(call, position=1, prev_hash=GENESIS)
    body["data"]["caller_phone"] = "13800000000"
    assert "data.caller_phone" in decode_refused(body)


def test_a_wrong_type_is_refused_even_when_it_could_be_coerced(
    examples: dict[str, Event], make_body
) -> None:
    completed = examples["CallCompleted"]
    assert "duration_seconds" in refused(
        CallCompleted, **fields_of(completed, duration_seconds="420")
    )
    assert "category" in refused(CallCompleted, **fields_of(completed, category="gossip"))

    body = make_body(completed, position=1, prev_hash=GENESIS)
    body["data"]["duration_seconds"] = "420"
    assert "data.duration_seconds" in decode_refused(body)


def test_a_naive_datetime_is_refused(examples: dict[str, Event], make_body) -> None:
    scheduled = examples["FollowUpScheduled"]
    naive = datetime(2020, 2, 12, 10)
    assert "due_at" in refused(FollowUpScheduled, **fields_of(scheduled, due_at=naive))

    body = make_body(scheduled, position=1, prev_hash=GENESIS)
    body["occurred_at"] = "2020-02-10T09:30:00"
    assert "occurred_at" in decode_refused(body)


def test_negative_and_zero_counts_are_refused(examples: dict[str, Event]) -> None:
    completed = examples["CallCompleted"]
    assert "duration_seconds" in refused(CallCompleted, **fields_of(completed, duration_seconds=-1))
    delivered = examples["AidDelivered"]
    assert "persons_served" in refused(AidDelivered, **fields_of(delivered, persons_served=0))
    assert "quantity" in refused(AidItem, kind="masks", quantity=-5, unit="piece")  # type: ignore[arg-type]


def test_money_is_exact(examples: dict[str, Event], make_body) -> None:
    funds = examples["FundsReceived"]
    assert "never a float" in refused(FundsReceived, **fields_of(funds, amount_yuan=136210.5))
    assert "at most 2 places" in refused(FundsReceived, **fields_of(funds, amount_yuan="0.005"))
    assert "amount_yuan" in refused(FundsReceived, **fields_of(funds, amount_yuan="-1"))

    body = make_body(funds, position=1, prev_hash=GENESIS)
    body["data"]["amount_yuan"] = 136210.0  # a JSON number: a float once parsed
    assert "data.amount_yuan" in decode_refused(body)

    # In: an integer. On the bus: a string with the fen. Back: the same Decimal.
    assert funds.amount_yuan == Decimal("136210.00")  # type: ignore[attr-defined]
    raw = seal(make_body(funds, position=1, prev_hash=GENESIS))
    assert b'"amount_yuan":"136210.00"' in raw
    assert REGISTRY.decode(raw).data.amount_yuan == Decimal("136210.00")


def test_rules_inside_one_event_name_the_field(examples: dict[str, Event]) -> None:
    request = examples["AidRequested"]
    assert "referral" in refused(AidRequested, **fields_of(request, referral=None))
    assert "needs" in refused(AidRequested, **fields_of(request, needs=("medicine", "medicine")))
    shortfall = examples["StockShortfallRecorded"]
    assert "short" in refused(StockShortfallRecorded, **fields_of(shortfall, short=Decimal("2")))
    assert "campaign" in refused(  # type: ignore[arg-type]
        AidItem, kind="escort", quantity=1, unit="trip", campaign="campaign:warm-lunch"
    )
    assert "assignee" in refused(AidAssigned, request="request:0001", assignee="person:7f3a9c")


def test_a_person_is_only_ever_an_opaque_reference(examples: dict[str, Event]) -> None:
    referral = examples["ReferredToAid"]
    assert "person" in refused(type(referral), **fields_of(referral, person="卫姨"))
    assert "person" in refused(type(referral), **fields_of(referral, person="Wei Yi"))


# -- through the bus ------------------------------------------------------------------------


def test_every_event_type_has_an_example(examples: dict[str, Event]) -> None:
    assert sorted(examples) == sorted(t.type_name() for t in REGISTRY.types())


def test_every_event_goes_through_an_envelope_and_comes_back_the_same(
    examples: dict[str, Event], make_body
) -> None:
    for position, example in enumerate(examples.values(), start=1):
        raw = seal(make_body(example, position=position, prev_hash=GENESIS))
        envelope = REGISTRY.decode(raw)

        assert type(envelope.data) is type(example)
        assert envelope.data == example
        assert envelope.type == example.type_name()
        # Decoded and dumped again, an event gives back its exact bytes, so an auditor can
        # re-hash what a consumer holds, not only what is on the disk.
        assert orjson.dumps(envelope.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS) == raw


def test_bytes_that_are_not_an_event_are_named_not_crashed_on(
    examples: dict[str, Event], make_body
) -> None:
    body = make_body(examples["CallReceived"], position=1, prev_hash=GENESIS)
    with pytest.raises(UndecodableEvent, match="not JSON"):
        REGISTRY.decode(b"{not json")
    with pytest.raises(UndecodableEvent, match="unknown event type 'CallForgotten'"):
        REGISTRY.decode(seal({**body, "type": "CallForgotten"}))
    with pytest.raises(UndecodableEvent, match=r"data\.category"):
        REGISTRY.decode(seal({**body, "data": {**body["data"], "category": "gossip"}}))


def test_the_delivery_names_its_kinds_once_each(examples: dict[str, Event]) -> None:
    delivered = examples["AidDelivered"]
    assert isinstance(delivered, AidDelivered)
    assert delivered.kinds == ("medicine", "vegetables")


# -- the hash chain -------------------------------------------------------------------------


def verify_chain(bodies: list[Body]) -> None:
    prev = GENESIS
    for body in bodies:
        prev = verify_link(body, prev)


def stored(raw: bytes) -> Body:
    """An event as an auditor reads it back from the stream."""
    return orjson.loads(raw)  # type: ignore[no-any-return]


@pytest.fixture
def hotline_history(examples: dict[str, Event], sealed_chain) -> list[bytes]:
    hotline = [e for e in examples.values() if e.source == "hotline"]
    return [raw for _, raw in sealed_chain(hotline)]


def test_an_untouched_history_verifies(hotline_history: list[bytes]) -> None:
    verify_chain([stored(raw) for raw in hotline_history])


def test_an_altered_event_is_caught(hotline_history: list[bytes]) -> None:
    bodies = [stored(raw) for raw in hotline_history]
    bodies[2]["data"]["group"] = "general"  # someone "corrects" 卫姨's call after the fact
    with pytest.raises(BrokenChain, match=r"position 3 .*\(altered\)"):
        verify_chain(bodies)


def test_a_dropped_event_is_caught(hotline_history: list[bytes]) -> None:
    bodies = [stored(raw) for raw in hotline_history]
    del bodies[3]
    with pytest.raises(BrokenChain, match=r"position 5 .*prev_hash"):
        verify_chain(bodies)


def test_an_inserted_event_is_caught_even_when_sealed_properly(
    hotline_history: list[bytes], examples: dict[str, Event], make_body
) -> None:
    bodies = [stored(raw) for raw in hotline_history]
    # The forger links the extra call to its predecessor correctly; the next event still
    # points at the predecessor, so the chain breaks right after the insertion.
    forged = make_body(examples["CallReceived"], position=3, prev_hash=bodies[1]["hash"])
    seal(forged)
    bodies.insert(2, forged)
    with pytest.raises(BrokenChain, match=r"position 3 .*prev_hash"):
        verify_chain(bodies)


# -- upcasting ------------------------------------------------------------------------------


class CallTimed(HotlineEvent):
    """Test only: version 1 recorded whole minutes, version 2 records seconds."""

    schema_version = 2
    call: Ref
    duration_seconds: CallSeconds


@pytest.fixture
def registry() -> EventRegistry:
    # A private registry: the global one must never learn about test-only types.
    registry = EventRegistry()
    registry.register(CallTimed)

    @registry.upcaster("CallTimed", 1)
    def minutes_to_seconds(data: dict[str, Any]) -> dict[str, Any]:
        return {"call": data["call"], "duration_seconds": data["minutes"] * 60}

    return registry


def test_an_old_event_is_lifted_to_the_current_schema(
    registry: EventRegistry, make_body: Callable[..., Body]
) -> None:
    body = make_body(CallTimed(call="call:0001", duration_seconds=0), position=1, prev_hash=GENESIS)
    body.update(schema_version=1, data={"call": "call:0001", "minutes": 7})
    raw = seal(body)

    envelope = registry.decode(raw)

    assert envelope.schema_version == 2
    assert envelope.data == CallTimed(call="call:0001", duration_seconds=420)
    # The record is what was written: its hash still verifies over the stored v1 bytes.
    assert envelope.hash == verify_link(stored(raw), GENESIS)
    assert "CallTimed" not in REGISTRY


def test_an_old_event_without_an_upcaster_is_refused_by_name(
    make_body: Callable[..., Body],
) -> None:
    registry = EventRegistry()
    registry.register(CallTimed)
    body = make_body(CallTimed(call="call:0001", duration_seconds=0), position=1, prev_hash=GENESIS)
    body.update(schema_version=1, data={"call": "call:0001", "minutes": 7})
    with pytest.raises(UndecodableEvent, match="no upcaster for CallTimed v1"):
        registry.decode(seal(body))


# -- event ids ------------------------------------------------------------------------------


def test_event_ids_are_unique_and_sort_in_the_order_they_were_made() -> None:
    before_ms = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(20_000)]  # more than one millisecond's 4,096 counter values
    after_ms = time.time_ns() // 1_000_000

    assert len(set(ids)) == len(ids)
    assert sorted(ids) == ids
    assert {i.version for i in ids} == {7}
    assert before_ms <= ids[0].int >> 80 <= ids[-1].int >> 80 <= after_ms + 5


def test_event_ids_as_text_are_uuid7s_in_the_order_they_were_made() -> None:
    from uuid import UUID

    from shared.contracts.envelope import uuid7_str

    texts = [uuid7_str() for _ in range(20_000)]
    ids = [UUID(t) for t in texts]

    assert [str(i) for i in ids] == texts  # the canonical 8-4-4-4-12 lower-case form
    assert len(set(texts)) == len(texts) and sorted(texts) == texts
    assert {i.version for i in ids} == {7} and uuid7() > ids[-1]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"a": 1},
        {"zeta": 1},
        {"a": 1, "z": "x"},
        {"a": {"hash": "no", "occurred_at": 1}, "hash": "stale", "occurred_at": "t", "z": None},
        {"data": {"k": ',"occurred_at":'}, "occurred_at": ',"occurred_at":"', "type": "T\\"},
        {"a": 1, "m": [1, {"z": 2}], "n": {"y": "x"}},  # containers after "hash"
        {"émoji": "😀", "hash_": 1, "has": 2, "a": "\u2028"},
    ],
)
def test_sealed_bytes_are_the_canonical_form_with_the_hash(body: Body) -> None:
    from shared.contracts.envelope import canonical_bytes

    unhashed = {k: v for k, v in body.items() if k != "hash"}
    expected_hash = hashlib.sha256(canonical_bytes(unhashed))
    sealed = seal(body)
    assert body["hash"] == expected_hash.hexdigest()
    assert sealed == canonical_bytes(body)
    assert orjson.loads(sealed) == body
