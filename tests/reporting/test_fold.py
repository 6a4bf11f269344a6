"""The fold, told as stories: given these events, when folded, then these figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from reporting_stories import (
    aid_cancelled,
    aid_delivered,
    aid_requested,
    at,
    call,
    day,
    envelopes,
    folded,
    follow_up_done,
    funds_received,
    goods_received,
    point_closed,
    point_opened,
    project_output,
    referred,
    shift,
    volunteers,
)

from services.reporting.domain.fold import _HANDLERS, VOIDS, Fold, business_day, totals
from services.reporting.domain.report import CORE_FIGURES, figures, report
from shared.contracts import REGISTRY
from shared.settings import PRODUCERS


def test_wei_yi_phones_her_station_and_gets_medicine_and_vegetables() -> None:
    # 卫姨, disabled and living alone, phones 南洲街社工站; the worker refers her to aid,
    # buys her medicine and vegetables and delivers them to her door.
    fold = folded("hotline", [point_opened("point:nanzhou-1", at(1, 8)), shift(1, at(1, 8))])
    folded(
        "hotline",
        [call(1, at(2), group="disabled", category="help_request"), referred(1, at(2))],
        fold,
    )
    folded("aid", [aid_requested(1, at(2, 10)), aid_delivered(1, at(2, 15))], fold)

    f = figures(totals(fold.increments))

    assert f["hotline_points_opened"] == 1 and f["hotline_points_open"] == 1
    assert f["hotline_shifts"] == 1
    assert f["services_given"] == 1 and f["tracked_services"] == 0
    assert f["referrals"] == 1 and f["referrals_to_aid"] == 1
    assert f["aid_actions"] == 1 and f["aid_persons_served"] == 1
    assert f["aid_requests"] == 1 and f["aid_requests_open"] == 0
    assert f["aid_delivered_value_yuan"] == "38.50"
    # one action, counted once under each kind it brought
    by_kind = {
        k.category: v for k, v in fold.increments.items() if k.metric == "aid_actions_by_kind"
    }
    assert by_kind == {"medicine": 1, "vegetables": 1}


def test_the_business_day_is_the_date_in_guangzhou_in_any_offset_and_any_year() -> None:
    china = timezone(timedelta(hours=8))
    assert business_day(datetime(2020, 3, 7, 0, 5, tzinfo=china)) == date(2020, 3, 7)
    assert business_day(datetime(2020, 3, 6, 23, 55, tzinfo=china)) == date(2020, 3, 6)
    assert business_day(datetime(2020, 3, 7, 1, 0, tzinfo=timezone(timedelta(hours=9)))) == (
        date(2020, 3, 7)  # 00:00 in Guangzhou
    )
    assert business_day(datetime(2020, 3, 6, 16, 0, tzinfo=UTC)) == date(2020, 3, 7)
    # In the summer of 1988 Guangzhou kept daylight saving (+09:00): 23:30 at +08:00 was
    # already the next day there, which only the zone's rules know.
    assert business_day(datetime(1988, 7, 1, 23, 30, tzinfo=china)) == date(1988, 7, 2)


def test_as_of_a_day_counts_what_happened_up_to_the_end_of_that_day_in_guangzhou() -> None:
    # 23:30 UTC on 6 March is 07:30 on 7 March in Guangzhou: a 7 March call.
    late_utc = datetime(2020, 3, 6, 23, 30, tzinfo=UTC)
    assert business_day(late_utc) == day(7)
    fold = folded("hotline", [call(1, at(6)), call(2, late_utc), call(3, at(8))])

    assert figures(totals(fold.increments, day(5)))["services_given"] == 0
    assert figures(totals(fold.increments, day(6)))["services_given"] == 1
    assert figures(totals(fold.increments, day(7)))["services_given"] == 2
    assert figures(totals(fold.increments))["services_given"] == 3


def test_services_given_are_calls_and_follow_ups_and_tracked_ones_are_the_follow_ups() -> None:
    fold = folded(
        "hotline",
        [call(1, at(1)), call(2, at(1), group="child"), follow_up_done(1, at(2))],
    )
    f = figures(totals(fold.increments))
    assert (f["services_given"], f["calls_received"], f["tracked_services"]) == (3, 2, 1)
    by_group = {k.grp: v for k, v in fold.increments.items() if k.metric == "calls_received"}
    assert by_group == {"elderly_alone": 1, "child": 1}


def test_open_gauges_go_up_and_down_and_a_request_closes_only_once() -> None:
    fold = folded(
        "hotline",
        [
            point_opened("point:a", at(1)),
            point_opened("point:b", at(1)),
            point_closed("point:a", at(3)),
        ],
    )
    folded(
        "aid",
        [
            aid_requested(1, at(1)),
            aid_requested(2, at(1), referral=False),
            aid_delivered(1, at(2)),
            aid_delivered(1, at(4), delivery=1),  # a second delivery to the same request
            aid_cancelled(1, at(5)),  # and a late cancellation: already closed
        ],
        fold,
    )

    assert figures(totals(fold.increments, day(2)))["hotline_points_open"] == 2
    assert figures(totals(fold.increments, day(3)))["hotline_points_open"] == 1
    assert figures(totals(fold.increments, day(1)))["aid_requests_open"] == 2
    now = figures(totals(fold.increments))
    assert now["aid_requests_open"] == 1 and now["aid_actions"] == 2
    assert now["hotline_points_opened"] == 2


def test_money_stays_exact_to_the_fen() -> None:
    # 0.10 + 0.20 is 0.30 here, not 0.30000000000000004.
    fold = folded(
        "donation",
        [
            funds_received(1, at(1), "0.10"),
            funds_received(2, at(1), "0.20"),
            funds_received(3, at(2), "136209.70"),
            goods_received(1, at(1), masks=14_901, value="355994.00"),
            volunteers(1864, at(3)),
            project_output(1, at(3)),
        ],
    )
    f = figures(totals(fold.increments))
    assert f["funds_raised_yuan"] == "136210.00"
    assert f["donated_items"] == 14_901  # the 650.5 kg of vegetables are goods, not items
    assert f["donated_value_yuan"] == "355994.00"
    assert f["volunteers_linked"] == 1864
    assert (f["project_outputs"], f["project_income_yuan"]) == (1, "110.00")


def test_the_figures_do_not_depend_on_how_the_events_were_batched() -> None:
    news = [aid_requested(i, at(1 + i % 5)) for i in range(20)]
    news += [aid_delivered(i, at(6)) for i in range(0, 20, 2)]
    news += [aid_cancelled(i, at(7)) for i in range(0, 20, 3)]
    events = envelopes("aid", news)
    whole = Fold()
    whole.apply_all(events)

    # Batches of 7 with the open requests handed from one to the next, as the live
    # consumer hands them through its table.
    state: dict[str, dict[str, str]] = {}
    summed: dict[str, int] = {}
    for start in range(0, len(events), 7):
        batch = Fold(open_requests=state)
        batch.apply_all(events[start : start + 7])
        for metric, value in totals(batch.increments).items():
            summed[metric] = summed.get(metric, 0) + value

    assert figures(summed) == figures(totals(whole.increments))


def test_every_event_type_has_a_place_in_the_fold() -> None:
    # Of the sources reporting folds (PEOPLE carries no figure: README "Personal data").
    folded = [t for t in REGISTRY.types() if t.source in PRODUCERS]
    assert folded and len(folded) < len(REGISTRY.types())
    missing = [t.type_name() for t in folded if t not in _HANDLERS and t not in VOIDS]
    assert missing == []


def test_the_report_has_its_stable_core_counts_as_ints_and_money_as_strings() -> None:
    body = report(day(7), {"funds_received_fen": 13_621_000, "aid_actions": 5478})
    assert body["as_of"] == "2020-03-07"
    core = {k: body["figures"][k] for k in CORE_FIGURES}  # type: ignore[index]
    assert core["funds_raised_yuan"] == "136210.00" and core["aid_actions"] == 5478
    assert all(isinstance(v, str) for k, v in core.items() if k.endswith("_yuan"))
    assert all(isinstance(v, int) for k, v in core.items() if not k.endswith("_yuan"))
