"""Property: after any valid history across the three sources, with duplicates on the bus,
redeliveries and reporting restarts in the middle, the live counters equal the audit replay,
counter by counter and figure by figure."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reporting_parts import Producers, caught_up, producers, reporting
from reporting_stories import (
    aid_cancelled,
    aid_delivered,
    aid_requested,
    at,
    call,
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

from services.reporting.adapters.counters import KEY_COLUMNS
from services.reporting.audit import replay
from shared.bus.naming import Naming
from shared.settings import PRODUCERS, Settings

days = st.integers(1, 10).map(at)
groups = st.sampled_from(["elderly_alone", "disabled", "low_income", "child", "general"])
few = st.integers(0, 5)
fen = st.integers(1, 10**8).map(lambda x: f"{x // 100}.{x % 100:02d}")

hotline_events = st.one_of(
    st.builds(lambda n, d, g: call(n, d, group=g), st.integers(0, 99), days, groups),
    st.builds(follow_up_done, st.integers(0, 99), days),
    st.builds(lambda p, d: point_opened(f"point:p{p}", d), few, days),
    st.builds(lambda p, d: point_closed(f"point:p{p}", d), few, days),
    st.builds(shift, st.integers(0, 99), days),
    st.builds(referred, few, days),
)
aid_events = st.one_of(
    st.builds(aid_requested, few, days, st.booleans()),
    st.builds(aid_delivered, few, days, few, st.integers(1, 4)),
    st.builds(aid_cancelled, few, days),
)
donation_events = st.one_of(
    st.builds(funds_received, few, days, fen),
    st.builds(goods_received, few, days, st.integers(1, 20_000), fen),
    st.builds(volunteers, st.integers(1, 50), days),
    st.builds(project_output, few, days),
)
steps = st.one_of(
    st.tuples(st.just("hotline"), st.lists(hotline_events, min_size=1, max_size=8)),
    st.tuples(st.just("aid"), st.lists(aid_events, min_size=1, max_size=8)),
    st.tuples(st.just("donation"), st.lists(donation_events, min_size=1, max_size=8)),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("redeliver"), st.sampled_from(PRODUCERS)),
    st.tuples(st.just("duplicate"), st.sampled_from(PRODUCERS)),
)


async def duplicate_last(bus: Producers, naming: Naming, source: str) -> None:
    """The last message of a stream published again with its id, as a relay retrying after
    a lost ack does: the server's duplicate window must drop it."""
    js = bus.nc.jetstream()
    stream = naming.stream(source)
    last = (await js.stream_info(stream)).state.last_seq
    if last:
        msg = await js.get_msg(stream, last)
        # Only its id: the relay's expected-last-sequence header is stored with it too.
        msg_id = (msg.headers or {})["Nats-Msg-Id"]
        ack = await js.publish(msg.subject, msg.data, headers={"Nats-Msg-Id": msg_id})
        assert ack.duplicate


async def live_equals_replay(
    nats_url: str, history: list[tuple[str, Any]], batch: int, as_of: date
) -> None:
    root = f"p{uuid.uuid4().hex[:8]}"
    config = Settings(
        nats_url=nats_url, subject_root=root, stream_prefix=f"{root.upper()}_", database_url=None
    )
    naming = Naming.of(config)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = f"sqlite+aiosqlite:///{tmp}/reporting.db"
        async with producers(config, Path(tmp)) as bus:
            live = reporting(config, database_url, batch=batch)
            parts, http = await live.__aenter__()
            try:
                for kind, arg in history:
                    if kind in PRODUCERS:
                        await bus.record(kind, arg)
                    elif kind == "duplicate":
                        await duplicate_last(bus, naming, arg)
                    else:
                        # Stop reporting with whatever it has not applied yet, and start it
                        # again; "redeliver" also has the server deliver the stream from its
                        # first message, as a consumer that lost its acks would.
                        wanted = parts.runner._consumer_config(1, arg) if arg else None
                        await live.__aexit__(None, None, None)
                        if wanted is not None:
                            js = bus.nc.jetstream()
                            await js.delete_consumer(naming.stream(arg), "reporting")
                            await js.add_consumer(naming.stream(arg), wanted)
                        live = reporting(config, database_url, batch=batch)
                        parts, http = await live.__aenter__()
                await caught_up(parts, await bus.heads())
                rows = await parts.reporting.store.counters(None, {}, KEY_COLUMNS)
                live_counters = {
                    tuple(r[c] for c in KEY_COLUMNS): r["value"] for r in rows if r["value"]
                }
                live_now = (await http.get("/api/report")).json()
                live_then = (await http.get("/api/report", params={"as_of": str(as_of)})).json()
            finally:
                await live.__aexit__(None, None, None)
            replayed = await replay(bus.nc, naming, PRODUCERS, detail=True)

    assert replayed.broken == []
    replay_counters = {
        (k.metric, k.day.isoformat(), *k[2:]): v for k, v in replayed.increments.items() if v
    }
    assert live_counters == replay_counters
    assert replayed.report(as_of, as_of) == live_then
    assert replayed.report(None, date.fromisoformat(live_now["as_of"])) == live_now


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    history=st.lists(steps, min_size=1, max_size=12),
    batch=st.sampled_from([1, 3, 1000]),
    as_of=st.integers(1, 10).map(lambda d: date(2020, 3, d)),
)
def test_live_counters_equal_the_replay_after_any_history(
    nats_url: str, history: list[tuple[str, Any]], batch: int, as_of: date
) -> None:
    asyncio.run(live_equals_replay(nats_url, history, batch, as_of))
