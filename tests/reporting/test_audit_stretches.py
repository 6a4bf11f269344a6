"""The audit replay cut into stretches folded in other processes finds exactly what one
process reading each stream whole finds: the same figures, the same counts, the same
findings (also when one falls on the seam between two stretches: a stream with a finding is
read again whole), the same known_at cut."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import nats
import orjson
import pytest
from reporting_stories import aid_delivered, aid_requested, at, call, chain, funds_received

from services.reporting.audit import Replay, replay
from services.reporting.slices import Plan, Slice
from shared.bus.naming import Naming
from shared.runtime import provision
from shared.settings import PRODUCERS, Settings

CALLS = 60


def calls() -> list[bytes]:
    return chain("hotline", [call(i, at(1 + i % 9), group=("child", "general")[i % 2])
                             for i in range(CALLS)])  # fmt: skip


def side_streams() -> dict[str, list[bytes]]:
    aid = [aid_requested(i, at(1)) for i in range(5)] + [aid_delivered(i, at(2)) for i in range(5)]
    return {
        "aid": chain("aid", aid),
        "donation": chain("donation", [funds_received(i, at(3), "1.50") for i in range(1, 4)]),
    }


async def published(settings: Settings, streams: dict[str, list[bytes]]) -> nats.NATS:
    """Bytes put on the streams as they are, as a forger with bus access could."""
    nc = await nats.connect(settings.nats_url)
    await provision(nc, settings)
    js = nc.jetstream()
    for source, messages in streams.items():
        for raw in messages:
            subject = Naming.of(settings).event_subject(source, orjson.loads(raw)["type"])
            await js.publish(subject, raw)
    return nc


async def both_ways(settings: Settings, nc: nats.NATS, **options: object) -> tuple[Replay, Replay]:
    naming = Naming.of(settings)
    whole = await replay(nc, naming, PRODUCERS, processes=1, detail=True, **options)  # type: ignore[arg-type]
    cut = await replay(
        nc, naming, PRODUCERS, processes=3, min_share=8, stretch=11, detail=True,
        claim_here=False,  # every stretch crosses from another process
        nats_url=settings.nats_url, **options,  # type: ignore[arg-type]
    )  # fmt: skip
    return whole, cut


def assert_same(whole: Replay, cut: Replay) -> None:
    assert cut.broken == whole.broken
    assert {s: (a.events, a.folded, a.undecodable, a.head) for s, a in cut.sources.items()} == {
        s: (a.events, a.folded, a.undecodable, a.head) for s, a in whole.sources.items()
    }
    assert dict(cut.days) == dict(whole.days)
    assert dict(cut.increments) == dict(whole.increments)


def test_only_the_long_stream_that_carries_no_state_is_cut() -> None:
    plan = Plan.of({"hotline": 60, "aid": 10, "donation": 3}, 3, whole=frozenset({"aid"}),
                   min_share=8, stretch=11)  # fmt: skip
    assert plan.whole == [Slice("aid", 1, 10), Slice("donation", 1, 3)]
    assert [(s.first, s.last) for s in plan.stretches] == [
        (1, 11), (12, 22), (23, 33), (34, 44), (45, 55), (56, 60)
    ]  # fmt: skip
    assert Plan.of({"hotline": 60}, 3, whole=frozenset(), min_share=30).processes == 1


async def test_an_intact_bus_cut_in_stretches_gives_what_the_whole_replay_gives(
    settings: Settings,
) -> None:
    nc = await published(settings, {"hotline": calls(), **side_streams()})
    try:
        whole, cut = await both_ways(settings, nc)
    finally:
        await nc.close()
    assert whole.broken == [] and whole.sources["hotline"].folded == CALLS
    assert len(cut.elsewhere) == 2  # two more processes took part
    assert_same(whole, cut)


# The stretches (as planned above): sequences 1-11, 12-22, 23-33, 34-44, 45-55, 56-60.
@pytest.mark.parametrize("dropped", [10, 11, 12, 33, 40])
async def test_a_dropped_event_is_named_wherever_the_stretches_are_cut(
    settings: Settings, dropped: int
) -> None:
    honest = calls()
    nc = await published(
        settings, {"hotline": honest[:dropped] + honest[dropped + 1 :], **side_streams()}
    )
    try:
        whole, cut = await both_ways(settings, nc)
    finally:
        await nc.close()
    assert len(whole.broken) == 1 and f"hotline position {dropped + 2}" in whole.broken[0]
    assert_same(whole, cut)


async def test_an_altered_event_in_a_later_stretch_is_named_and_the_rest_folded(
    settings: Settings,
) -> None:
    honest = calls()
    body = orjson.loads(honest[45])
    body["data"]["group"] = "elderly_alone"
    forged = [*honest[:45], orjson.dumps(body, option=orjson.OPT_SORT_KEYS), *honest[46:]]
    nc = await published(settings, {"hotline": forged, **side_streams()})
    try:
        whole, cut = await both_ways(settings, nc)
    finally:
        await nc.close()
    assert len(whole.broken) == 1 and "altered" in whole.broken[0]
    assert whole.sources["hotline"].folded == CALLS - 1
    assert_same(whole, cut)


@pytest.mark.parametrize("at_sequence", [11, 12, 40])  # 12: a stretch's first message
async def test_garbage_in_a_stretch_is_named_and_every_event_folded_either_way(
    settings: Settings, at_sequence: int
) -> None:
    honest = calls()
    nc = await published(settings, {"hotline": honest[: at_sequence - 1], **side_streams()})
    try:
        await nc.publish(Naming.of(settings).event_subject("hotline", "Oops"), b"hello")
        await nc.flush()
        await nc.close()
        nc = await published(settings, {"hotline": honest[at_sequence - 1 :]})
        whole, cut = await both_ways(settings, nc)
    finally:
        await nc.close()
    assert len(whole.broken) == 1 and f"sequence {at_sequence} " in whole.broken[0]
    assert whole.sources["hotline"].folded == CALLS
    assert_same(whole, cut)


async def test_known_at_cuts_the_same_events_either_way(settings: Settings) -> None:
    honest = calls()
    nc = await published(settings, {"hotline": honest[:20], **side_streams()})
    try:
        await asyncio.sleep(0.05)
        known_at = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await nc.close()
        nc = await published(settings, {"hotline": honest[20:]})
        whole, cut = await both_ways(settings, nc, known_at=known_at)
    finally:
        await nc.close()
    assert whole.sources["hotline"].events == 20
    assert_same(whole, cut)


@pytest.mark.parametrize("spliced_at", [12, 30, 34])  # 12 and 34: a stretch's first
async def test_a_spliced_in_history_is_named_also_on_the_seam(
    settings: Settings, spliced_at: int
) -> None:
    """From ``spliced_at`` on, another history: each event's own hash and position are right,
    only its link to what came before is not, so only the link check can tell."""
    other = [call(i, at(2), group="disabled") for i in range(spliced_at - 1, CALLS)]
    forged = chain("hotline", other, first=spliced_at, prev_hash="f" * 64)
    nc = await published(
        settings, {"hotline": [*calls()[: spliced_at - 1], *forged], **side_streams()}
    )
    try:
        whole, cut = await both_ways(settings, nc)
    finally:
        await nc.close()
    assert len(whole.broken) == 1 and f"hotline position {spliced_at}" in whole.broken[0]
    assert "prev_hash" in whole.broken[0]
    assert_same(whole, cut)


async def test_a_stretch_that_cannot_be_read_fails_the_replay_by_name(settings: Settings) -> None:
    nc = await published(settings, {"hotline": calls(), **side_streams()})
    try:
        with pytest.raises(RuntimeError, match=r"replay process kapok-replay-\d failed"):
            await replay(
                nc, Naming.of(settings), PRODUCERS, processes=3, min_share=8,
                nats_url="nats://127.0.0.1:9",  # nothing listens there
            )  # fmt: skip
    finally:
        await nc.close()
