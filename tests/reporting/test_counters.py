"""The counter upsert on a real database: batches larger than one statement's rows, adding
to rows that exist, and the running totals beside the buckets."""

from __future__ import annotations

from datetime import date

from services.reporting.adapters.counters import (
    _UPSERTS,
    ROWS_PER_STATEMENT,
    CounterStore,
    add_totals,
    upsert,
)
from services.reporting.domain.fold import Key
from shared.eventstore.database import Database


async def test_a_batch_of_more_rows_than_one_statement_adds_up_exactly(database_url: str) -> None:
    db = Database(database_url)
    store = CounterStore(db)
    try:
        await store.setup()
        many = 2 * ROWS_PER_STATEMENT + 517  # 1024, 1024, 512, 4, 1
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
        upserts = _UPSERTS[db.writer.dialect.name, db.writer.dialect.driver]
        if upserts is not None and upserts.multirow:
            # A few statements of a power of two of rows, not one per row count.
            assert set(upserts._statements) <= {2**k for k in range(11)}
    finally:
        await db.dispose()
