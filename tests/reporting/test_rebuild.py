"""A data directory from before the compact counter key: reporting drops its counters, says
so, and folds every stream again from the start, counting each event exactly once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from reporting_parts import caught_up, producers, reporting
from reporting_stories import aid_requested, at, call
from sqlalchemy import BigInteger, Column, Date, MetaData, PrimaryKeyConstraint, String, Table

from services.reporting.adapters.tables import metadata
from services.reporting.domain.fold import DIMENSIONS
from shared.eventstore.database import Database
from shared.settings import Settings

# reporting_counter_days as Kapok made it before: the key in twelve text columns.
older = MetaData()
older_counters = Table(
    "reporting_counter_days",
    older,
    Column("metric", String(48), nullable=False),
    Column("day", Date, nullable=False),
    *(Column(name, String(120), nullable=False) for name in DIMENSIONS),
    Column("value", BigInteger, nullable=False),
    PrimaryKeyConstraint("metric", "day", *DIMENSIONS),
)
older_open_requests = Table(
    "reporting_open_requests",
    older,
    Column("request", String(64), primary_key=True),
    Column("dims", String, nullable=False),
)


async def left_by_an_older_kapok(database_url: str) -> None:
    """The reporting tables replaced by the older layout, holding what that fold had made of
    the history: its checkpoints (left as they are) say every event was applied."""
    db = Database(database_url)
    try:
        async with db.write() as conn:
            await conn.run_sync(metadata.drop_all)
            await conn.run_sync(older.create_all)
            blank = dict.fromkeys(DIMENSIONS, "")
            row = {"metric": "calls_received", "day": at(1).date(), "value": 999}
            await conn.execute(older_counters.insert(), [{**blank, **row}])
            # Folded again over this, request 1 would look open already and not count.
            await conn.execute(
                older_open_requests.insert(), [{"request": "request:1", "dims": "{}"}]
            )
    finally:
        await db.dispose()


async def test_counters_of_an_older_layout_are_folded_again_from_the_start(
    settings: Settings, database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1 + i % 3)) for i in range(30)])
        await bus.record("aid", [aid_requested(1, at(2))])
        async with reporting(settings, database_url, batch=10) as (parts, _):
            await caught_up(parts, await bus.heads())
        await left_by_an_older_kapok(database_url)
        # While it is down, ten more calls come in.
        await bus.record("hotline", [call(i, at(4)) for i in range(30, 40)])

        with caplog.at_level(logging.WARNING, logger="kapok.reporting"):
            async with reporting(settings, database_url, batch=10) as (parts, http):
                await caught_up(parts, await bus.heads())
                figures = (await http.get("/api/report")).json()["figures"]
                by_day = (await http.get("/api/counters?metric=calls_received&by=day")).json()
        assert "has an older layout" in caplog.text and "from the start" in caplog.text
        assert figures["services_given"] == 40
        assert figures["aid_requests_open"] == 1
        assert [c["value"] for c in by_day["counters"]] == [10, 10, 10, 10]
