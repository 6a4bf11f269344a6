"""Property: whatever the services accept, reporting counts, exactly. Events at the domain's
bounds (docs/bounds.md) — the most money in every line, the most goods, persons, volunteers,
recipients, the longest call and shift, and the least of each — folded live equal the audit's
replay, counter by counter and figure by figure, on 64-bit counters."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reporting_stories import NANZHOU, at
from test_replay_property import live_equals_replay

from shared.contracts import NewEvent
from shared.contracts import aid as a
from shared.contracts import donation as d
from shared.contracts import hotline as h
from shared.contracts.types import (
    MAX_CALL_SECONDS,
    MAX_PERSONS,
    MAX_QUANTITY,
    MAX_RECIPIENTS,
    MAX_SHIFT_MINUTES,
    MAX_VOLUNTEERS,
    MAX_YUAN,
    AidItem,
    Item,
)

MONEY = st.sampled_from([Decimal("0.01"), MAX_YUAN])
QUANTITY = st.sampled_from([Decimal("0.001"), MAX_QUANTITY])
LINES = st.sampled_from([1, 100])  # goods lines of a receipt, pledge or distribution
days = st.integers(1, 10).map(at)
CHARITY = {"campaign": "campaign:bounds", "campaign_kind": "charity", "organisation": "org:gz"}


def goods(n: int, quantity: Decimal, value: Decimal) -> tuple[Item, ...]:
    return tuple(
        Item(kind="masks", quantity=quantity, unit="piece", value_yuan=value) for _ in range(n)
    )


def funds(k: int, when: Any, amount: Decimal) -> NewEvent:
    return NewEvent(
        d.FundsReceived(**CHARITY, receipt=f"funds:{k}", donor_kind="company", amount_yuan=amount),
        when,
    )


def receipt(k: int, when: Any, n: int, quantity: Decimal, value: Decimal) -> NewEvent:
    items = goods(n, quantity, value)
    received = d.GoodsReceived(
        **CHARITY, receipt=f"receipt:{k}", donor_kind="company", items=items, district="haizhu"
    )
    return NewEvent(received, when)


def pledge(k: int, when: Any, n: int, quantity: Decimal, value: Decimal) -> NewEvent:
    promised = d.DonationPledged(
        **CHARITY,
        pledge=f"pledge:{k}",
        donor="donor:d1",
        donor_kind="company",
        goods=goods(n, quantity, value),
        funds_yuan=value,
    )
    return NewEvent(promised, when)


def distribution(k: int, when: Any, n: int, quantity: Decimal, recipients: int) -> NewEvent:
    out = d.GoodsDistributed(
        **CHARITY,
        distribution=f"distribution:{k}",
        items=goods(n, quantity, MAX_YUAN),
        recipient_kind="households",
        recipients=recipients,
        district="haizhu",
    )
    return NewEvent(out, when)


def output(k: int, when: Any, quantity: Decimal, people: int, income: Decimal) -> NewEvent:
    made = d.ProjectOutputRecorded(
        campaign="campaign:farm",
        campaign_kind="self_help",
        organisation="org:gz",
        output=f"output:{k}",
        kind="vegetables",
        quantity=quantity,
        unit="jin",
        beneficiaries=people,
        district="liwan",
        income_yuan=income,
    )
    return NewEvent(made, when)


def linked(when: Any, n: int) -> NewEvent:
    link = d.VolunteersLinked(
        volunteers=n, organisation="org:gz", district="haizhu", station="station:nanzhou"
    )
    return NewEvent(link, when)


def delivered(k: int, when: Any, quantity: Decimal, value: Decimal, persons: int) -> NewEvent:
    items = tuple(
        AidItem(kind="medicine", quantity=quantity, unit="box", value_yuan=value) for _ in range(50)
    )
    done = a.AidDelivered(
        request=f"request:{k}",
        delivery=f"delivery:{k}",
        person="person:p1",
        group="disabled",
        place=NANZHOU,
        items=items,
        persons_served=persons,
    )
    return NewEvent(done, when)


def call_done(k: int, when: Any, seconds: int) -> NewEvent:
    done = h.CallCompleted(
        call=f"call:{k}",
        point="point:nanzhou-1",
        place=NANZHOU,
        category="help_request",
        group="elderly_alone",
        outcome="advice_given",
        duration_seconds=seconds,
    )
    return NewEvent(done, when)


def shift_ended(k: int, when: Any, minutes: int) -> NewEvent:
    ended = h.ShiftEnded(
        shift=f"shift:{k}",
        worker="worker:w1",
        point="point:nanzhou-1",
        place=NANZHOU,
        minutes_on_duty=minutes,
    )
    return NewEvent(ended, when)


keys = st.integers(0, 10**6)
donation_events = st.one_of(
    st.builds(funds, keys, days, MONEY),
    st.builds(receipt, keys, days, LINES, QUANTITY, MONEY),
    st.builds(pledge, keys, days, LINES, QUANTITY, MONEY),
    st.builds(distribution, keys, days, LINES, QUANTITY, st.sampled_from([1, MAX_RECIPIENTS])),
    st.builds(output, keys, days, QUANTITY, st.sampled_from([1, MAX_RECIPIENTS]), MONEY),
    st.builds(linked, days, st.sampled_from([1, MAX_VOLUNTEERS])),
)
aid_events = st.builds(delivered, keys, days, QUANTITY, MONEY, st.sampled_from([1, MAX_PERSONS]))
hotline_events = st.one_of(
    st.builds(call_done, keys, days, st.sampled_from([0, MAX_CALL_SECONDS])),
    st.builds(shift_ended, keys, days, st.sampled_from([0, MAX_SHIFT_MINUTES])),
)
steps = st.one_of(
    st.tuples(st.just("donation"), st.lists(donation_events, min_size=1, max_size=6)),
    st.tuples(st.just("aid"), st.lists(aid_events, min_size=1, max_size=4)),
    st.tuples(st.just("hotline"), st.lists(hotline_events, min_size=1, max_size=4)),
)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=st.lists(steps, min_size=1, max_size=6), batch=st.sampled_from([1, 1000]))
def test_events_at_the_bounds_fold_live_as_the_audit_replays_them(
    nats_url: str, history: list[tuple[str, Any]], batch: int
) -> None:
    asyncio.run(live_equals_replay(nats_url, history, batch, at(10).date()))
