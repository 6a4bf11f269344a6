"""The counter upsert on a real database: batches larger than one statement's rows, adding
to rows that exist, the running totals beside the buckets, and the compact key (a metric and
a combination of dimensions each an id, handed out by the writer and cached)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from services.reporting.adapters.counters import CounterStore, add_totals, upsert
from services.reporting.adapters.tables import dims, metrics
from services.reporting.adapters.upserts import _COMPILED, ROWS_PER_STATEMENT, statement_rows
from services.reporting.domain.fold import Key
from shared.eventstore.database import Database


async def test_a_batch_of_more_rows_than_one_statement_adds_up_exactly(database_url: str) -> None:
    db = Database(database_url)
    store = CounterStore(db)
    try:
        await store.setup()
        many = 2 * ROWS_PER_STATEMENT + 517  # 2048, 2048, 384, 96, 24, 12, 1
        first = {Key("calls_received", date(2020, 3, 1 + i % 28), point=f"point:p{i}"): 1
                 for i in range(many)}  # fmt: skip
        # The same keys again, plus a zero (never written) and a negative (a gauge's -1).
        second = {**dict.fromkeys(first, 2), Key("aid_requests_open", date(2020, 3, 2)): 0,
                  Key("hotline_points_open", date(2020, 3, 3), point="point:x"): -1}  # fmt: skip
        for increments in (first, second):
            async with db.write() as conn:
                assert await upsert(conn, increments) == len([v for v in increments.values() if v])
                await add_totals(conn, increments)
        totals = await store.totals()
        assert totals == {"calls_received": 3 * many, "hotline_points_open": -1}
        assert totals == await store.totals(as_of=date(2100, 1, 1))
        rows = await store.counters(date(2020, 3, 1), {"metric": "calls_received"}, ("point",))
        assert len(rows) == len([i for i in range(many) if i % 28 == 0])
        assert {r["value"] for r in rows} == {3}
        upserts = _COMPILED[
            db.writer.dialect.name, db.writer.dialect.driver, "reporting_counter_days"
        ]
        if upserts is not None and upserts.multirow:
            # A few statements of 2^k or 3 × 2^k rows, not one per row count.
            assert set(upserts._statements) <= {m << k for m in (1, 3) for k in range(12)}
    finally:
        await db.dispose()


def test_a_statement_holds_2_to_the_k_or_3_times_2_to_the_k_rows() -> None:
    for rows in range(1, 3 * ROWS_PER_STATEMENT):
        size = statement_rows(rows)
        assert size <= min(rows, ROWS_PER_STATEMENT)
        assert size in {m << k for m in (1, 3) for k in range(12)}
        assert rows - size < size or size == ROWS_PER_STATEMENT  # so, few statements a batch


class Interrupted(Exception):
    pass


async def test_ids_of_a_rolled_back_batch_are_not_remembered(database_url: str) -> None:
    db = Database(database_url)
    store = CounterStore(db)
    try:
        await store.setup()
        # A batch brings a metric and a place never seen, and its transaction rolls back:
        with pytest.raises(Interrupted):
            async with db.write() as conn:
                await upsert(conn, {Key("calls_received", date(2020, 3, 1), district="haizhu"): 1})
                raise Interrupted
        # the next batch must not count on their ids (the tables never got them).
        batch = {Key("calls_received", date(2020, 3, 1), district="liwan"): 2}
        async with db.write() as conn:
            await upsert(conn, batch)
            await add_totals(conn, batch)
        by_district = await store.counters(None, {}, ("metric", "district"))
        assert by_district == [{"metric": "calls_received", "district": "liwan", "value": 2}]
    finally:
        await db.dispose()


async def test_metrics_share_a_combination_and_a_second_process_carries_on_its_ids(
    database_url: str,
) -> None:
    where = {"net": "hotline", "district": "haizhu", "point": "point:p1", "category": "help"}
    first = Database(database_url)
    try:
        await CounterStore(first).setup()
        batch = {Key("calls_completed", date(2020, 3, 1), **where): 1,
                 Key("call_seconds", date(2020, 3, 1), **where): 300}  # fmt: skip
        async with first.write() as conn:
            await upsert(conn, batch)
    finally:
        await first.dispose()
    # The service starts again (a process of its own, nothing cached) and goes on:
    second = Database(database_url)
    store = CounterStore(second)
    try:
        await store.setup()
        child = {**where, "grp": "child"}
        batch = {Key("calls_completed", date(2020, 3, 2), **where): 1,
                 Key("calls_completed", date(2020, 3, 2), **child): 1}  # fmt: skip
        async with second.write() as conn:
            await upsert(conn, batch)
            await add_totals(conn, batch)
        async with second.read() as conn:
            assert await conn.scalar(select(func.count()).select_from(metrics)) == 2
            assert await conn.scalar(select(func.count()).select_from(dims)) == 2
        rows = await store.counters(None, {"district": "haizhu"}, ("metric", "day", "grp"))
        assert rows == [
            {"metric": "call_seconds", "day": "2020-03-01", "grp": "", "value": 300},
            {"metric": "calls_completed", "day": "2020-03-01", "grp": "", "value": 1},
            {"metric": "calls_completed", "day": "2020-03-02", "grp": "", "value": 1},
            {"metric": "calls_completed", "day": "2020-03-02", "grp": "child", "value": 1},
        ]
        on_the_2nd = await store.counters(None, {"day": "2020-03-02"}, ("metric",))
        assert on_the_2nd == [{"metric": "calls_completed", "value": 2}]
    finally:
        await second.dispose()
