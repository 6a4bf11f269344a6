"""Voids and corrections in the fold, told as stories: given these events and a void, when
folded, then the figures as of each day are the corrected ones, on the original's days."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from reporting_stories import (
    aid_delivered,
    aid_requested,
    at,
    call,
    day,
    envelopes,
    folded,
    funds_received,
    goods_received,
    voided,
    volunteers,
)

from services.reporting.domain.fold import Fold, Key, fold_stateless, totals
from services.reporting.domain.report import figures


def test_a_call_logged_twice_is_voided_on_the_day_it_was_logged() -> None:
    # Given two calls on 2 March and one on 3 March, when the second of 2 March is voided on
    # 5 March as logged twice, then as of 2 March one service was given, as of 3 March two.
    calls = [call(1, at(2)), call(2, at(2)), call(3, at(3))]
    fold = folded("hotline", [*calls, voided([calls[1]], at(5))])

    assert figures(totals(fold.increments, day(2)))["services_given"] == 1
    assert figures(totals(fold.increments, day(3)))["services_given"] == 2
    (revision,) = fold.revisions
    assert (revision.type, revision.fact, revision.reason) == (
        "CallVoided",
        "call:2",
        "logged twice",
    )
    assert ("2020-03-02", "calls_received", -1) in revision.changes


def test_a_correction_moves_the_call_to_the_day_it_really_happened() -> None:
    # Given a call logged on 2 March that was really taken on 4 March, when corrected, then
    # 2 March counts none and 4 March one.
    logged = call(1, at(2))
    fold = folded("hotline", [logged, voided([logged], at(6), replacement=[call(1, at(4))])])

    assert figures(totals(fold.increments, day(3)))["services_given"] == 0
    assert figures(totals(fold.increments, day(4)))["services_given"] == 1
    assert {change[:2] for change in fold.revisions[0].changes} == {
        ("2020-03-02", "calls_received"),
        ("2020-03-04", "calls_received"),
    }


def test_a_voided_delivery_reopens_its_request_and_the_next_delivery_closes_it() -> None:
    # Given 卫姨's request delivered on 2 March, when the delivery is voided (it went to the
    # wrong door) and delivered again on 7 March, then 2 March has no action and the request
    # is open from 2 to 6 March.
    delivered = aid_delivered(1, at(2, 15))
    fold = folded("aid", [aid_requested(1, at(2, 10)), delivered])
    folded("aid", [voided([delivered], at(3), request_reopened=True)], fold)
    folded("aid", [aid_delivered(1, at(7), delivery=2)], fold)

    as_of = lambda d: figures(totals(fold.increments, day(d)))  # noqa: E731
    assert (as_of(2)["aid_actions"], as_of(2)["aid_requests_open"]) == (0, 1)
    assert (as_of(6)["aid_actions"], as_of(6)["aid_requests_open"]) == (0, 1)
    assert (as_of(7)["aid_actions"], as_of(7)["aid_requests_open"]) == (1, 0)
    assert as_of(7)["aid_delivered_value_yuan"] == "38.50"


def test_the_first_of_two_deliveries_voided_leaves_the_request_open_until_the_second() -> None:
    first, second = aid_delivered(1, at(2, 15)), aid_delivered(1, at(5), delivery=2)
    fold = folded("aid", [aid_requested(1, at(2, 10)), first, second])
    folded("aid", [voided([first], at(6), request_closed_again_at=at(5))], fold)

    open_on = lambda d: figures(totals(fold.increments, day(d)))["aid_requests_open"]  # noqa: E731
    assert [open_on(d) for d in (2, 4, 5, 6)] == [1, 1, 0, 0]


def test_donations_voided_come_off_the_charity_figures() -> None:
    goods, funds, linked = (
        goods_received(1, at(2), 500, "250.00"),
        funds_received(1, at(2), "90"),
        volunteers(4, at(2)),
    )
    fold = folded(
        "donation",
        [
            goods,
            funds,
            linked,
            voided([goods], at(4)),
            voided([funds], at(4)),
            voided([linked], at(4), link="volunteers:1"),
        ],
    )

    f = figures(totals(fold.increments, day(2)))
    assert (f["donated_items"], f["donated_value_yuan"], f["funds_raised_yuan"]) == (
        0,
        "0.00",
        "0.00",
    )
    assert f["volunteers_linked"] == 0
    assert len(fold.revisions) == 3


def test_the_worker_folds_voids_as_the_service_does() -> None:
    calls = [call(1, at(2)), call(2, at(2))]
    events = envelopes("hotline", [*calls, voided([calls[0]], at(5))])
    increments, revisions = fold_stateless(events)
    whole = Fold()
    whole.apply_all(events)

    assert increments == {tuple(k): v for k, v in whole.increments.items()}
    assert revisions == whole.revisions


# -- property: a history with voids folds to the counters of the history as corrected -------

_day = st.integers(1, 9)
_calls = st.lists(st.tuples(_day, st.sampled_from(["help_request", "emotional_support"])),
                  min_size=1, max_size=12)  # fmt: skip


@given(
    calls=_calls,
    voids=st.lists(st.tuples(st.integers(0, 11), st.none() | _day), max_size=6),
    cut=st.integers(1, 20),
)
@settings(max_examples=60, deadline=None)
def test_voids_fold_to_the_counters_of_the_corrected_history(
    calls: list[tuple[int, str]], voids: list[tuple[int, int | None]], cut: int
) -> None:
    """Given calls, some voided (some corrected to another day), folded in batches cut
    anywhere, the counters are those of the history as it should have been recorded."""
    recorded = [call(n, at(d), category=c) for n, (d, c) in enumerate(calls)]
    standing = dict(enumerate(recorded))
    history = list(recorded)
    for which, moved_to in voids:
        if which not in standing:
            continue  # voided already, or never recorded: refused by the service
        again = [] if moved_to is None else [call(which, at(moved_to))]
        history.append(voided([standing[which]], at(10), replacement=again))
        if again:
            standing[which] = again[0]
        else:
            del standing[which]

    events = envelopes("hotline", history)
    live = Fold()
    for start in range(0, len(events), cut):
        increments, _ = fold_stateless(events[start : start + cut])
        for key, value in increments.items():
            live.increments[Key(*key)] += value
    expected = folded("hotline", list(standing.values()))

    def counters(fold: Fold) -> dict[Key, int]:
        return {key: value for key, value in fold.increments.items() if value}

    assert counters(live) == counters(expected)  # every counter, on every day
