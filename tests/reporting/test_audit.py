"""Audit replay: the figures recomputed from the bus alone agree with the live ones, and any
altered, dropped or inserted message on the bus is named by stream, sequence and subject,
while the replay reads on past it and folds every event of the chains."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import nats
import orjson
from harness.waits import free_port, until
from reporting_parts import caught_up, producers, reporting
from reporting_stories import (
    aid_delivered,
    aid_requested,
    at,
    call,
    chain,
    day,
    funds_received,
    goods_received,
    volunteers,
)

from services.reporting.audit import audit_replay, replay
from shared.bus.embedded import find_binary, port_is_free
from shared.bus.naming import Naming
from shared.runtime import provision
from shared.settings import PRODUCERS, Settings


async def test_the_replay_of_the_bus_gives_the_live_figures_for_any_day(
    settings: Settings, database_url: str, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1 + i % 9)) for i in range(50)])
        await bus.record("aid", [aid_requested(i, at(2)) for i in range(5)])
        await bus.record("aid", [aid_delivered(i, at(3 + i), persons=2) for i in range(3)])
        await bus.record(
            "donation",
            [
                goods_received(1, at(4), masks=100, value="12.34"),
                funds_received(1, at(6), "0.01"),
                volunteers(7, at(8)),
            ],
        )
        async with reporting(settings, database_url) as (parts, http):
            await caught_up(parts, await bus.heads())
            replayed = await replay(bus.nc, Naming.of(settings), PRODUCERS)
            assert replayed.broken == []
            assert sum(s.folded for s in replayed.sources.values()) == 61
            for as_of in (day(1), day(3), day(7), day(30)):
                live = (await http.get("/api/report", params={"as_of": str(as_of)})).json()
                assert replayed.report(as_of, as_of) == live


async def published_raw(settings: Settings, source: str, messages: list[bytes]) -> nats.NATS:
    """Put bytes on a source's stream of this test's own, as a forger with bus access could."""
    nc = await nats.connect(settings.nats_url)
    await provision(nc, settings)
    js = nc.jetstream()
    for raw in messages:
        body = orjson.loads(raw)
        await js.publish(Naming.of(settings).event_subject(source, body["type"]), raw)
    return nc


async def test_an_altered_event_on_the_bus_is_named_and_fails_the_audit(
    settings: Settings,
) -> None:
    honest = chain("donation", [funds_received(i, at(1), "100.00") for i in range(1, 6)])
    # Someone changed the third receipt's amount on the bus, keeping its hash.
    body = orjson.loads(honest[2])
    body["data"]["amount_yuan"] = "100000.00"
    forged = [*honest[:2], orjson.dumps(body, option=orjson.OPT_SORT_KEYS), *honest[3:]]
    nc = await published_raw(settings, "donation", forged)
    try:
        out, err = io.StringIO(), io.StringIO()
        status = await audit_replay(
            nc, Naming.of(settings), PRODUCERS, as_of=None, known_at=None, live_url=None,
            out=out, err=err,
        )  # fmt: skip
    finally:
        await nc.close()
    assert status == 1
    assert "donation position 3" in err.getvalue() and "altered" in err.getvalue()
    # The altered receipt is not counted; the chain goes on past it (its successor links to
    # it), and every other receipt is.
    assert orjson.loads(out.getvalue())["figures"]["funds_raised_yuan"] == "400.00"


async def test_the_audit_reads_on_past_a_stranger_and_a_forgery_and_names_their_sequences(
    settings: Settings,
) -> None:
    """Issue 13's stray publish and a forged envelope, between real events: both named by
    sequence and subject, every real event folded, and the exit says there are findings."""
    honest = chain("hotline", [call(i, at(1)) for i in range(8)])
    [forged] = chain("hotline", [call(99, at(1))], first=5, prev_hash="f" * 64)
    naming = Naming.of(settings)
    nc = await published_raw(settings, "hotline", honest[:4])
    try:
        stray = naming.event_subject("hotline", "Oops")
        await nc.publish(stray, b"hello")  # a core publish: the stream stores it at 5
        await nc.flush()
        forged_subject = naming.event_subject("hotline", "CallReceived")
        await nc.jetstream().publish(forged_subject, forged)  # at 6
        for raw in honest[4:]:  # positions 5 to 8 at sequences 7 to 10
            await nc.jetstream().publish(forged_subject, raw)
        out, err = io.StringIO(), io.StringIO()
        status = await audit_replay(
            nc, naming, PRODUCERS, as_of=None, known_at=None, live_url=None, out=out, err=err
        )
    finally:
        await nc.close()
    assert status == 1
    stream = naming.stream("hotline")
    findings = [line for line in err.getvalue().splitlines() if line.startswith("FINDING")]
    assert findings[0].startswith(f"FINDING {stream} sequence 5 ({stray}): not a Kapok event")
    assert findings[1].startswith(f"FINDING {stream} sequence 6 ({forged_subject}): hotline "
                                  "position 5")  # fmt: skip
    assert "not of the chain" in findings[1] and len(findings) == 2
    assert "hotline: 10 events read, 8 folded, 0 undecodable, 2 finding(s)" in err.getvalue()
    assert orjson.loads(out.getvalue())["figures"]["services_given"] == 8


async def test_a_dropped_event_breaks_the_link_of_the_one_after_it(settings: Settings) -> None:
    honest = chain("hotline", [call(i, at(1)) for i in range(5)])
    nc = await published_raw(settings, "hotline", [*honest[:2], *honest[3:]])
    try:
        replayed = await replay(nc, Naming.of(settings), PRODUCERS)
    finally:
        await nc.close()
    assert len(replayed.broken) == 1
    assert "hotline position 4" in replayed.broken[0] and "prev_hash" in replayed.broken[0]
    assert replayed.sources["hotline"].folded == 4  # read on from position 4


async def test_known_at_replays_only_what_the_bus_held_then(
    settings: Settings, tmp_path: Path
) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1)) for i in range(5)])
        await asyncio.sleep(0.05)
        known_at = datetime.now(UTC)
        await asyncio.sleep(0.05)
        await bus.record("hotline", [call(i, at(1)) for i in range(5, 12)])
        then = await replay(bus.nc, Naming.of(settings), PRODUCERS, known_at=known_at)
        now = await replay(bus.nc, Naming.of(settings), PRODUCERS)
    assert then.report(None, day(1))["figures"]["services_given"] == 5  # type: ignore[index]
    assert now.report(None, day(1))["figures"]["services_given"] == 12  # type: ignore[index]


async def kapok_audit_replay(settings: Settings, **env: str) -> tuple[int, str, str]:
    """`kapok audit replay --as-of 2020-03-07 --no-compare` as a user runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kapok.cli", "audit", "replay", "--as-of", "2020-03-07",
        "--no-compare",
        env={
            **os.environ,
            "KAPOK_NATS_URL": settings.nats_url,
            "KAPOK_SUBJECT_ROOT": settings.subject_root,
            "KAPOK_STREAM_PREFIX": settings.stream_prefix,
            **env,
        },
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_kapok_audit_replay_as_a_command(settings: Settings, tmp_path: Path) -> None:
    async with producers(settings, tmp_path) as bus:
        await bus.record("hotline", [call(i, at(1)) for i in range(3)])
    status, out, err = await kapok_audit_replay(settings)
    assert status == 0, err
    assert orjson.loads(out)["figures"]["services_given"] == 3
    assert "hotline: 3 events read, 3 folded, 0 undecodable, chain intact" in err


async def test_kapok_audit_replay_on_a_bus_without_kapok_streams_says_so_in_one_line(
    settings: Settings,
) -> None:
    """An unrelated nats-server (here: this one, with streams under another prefix), none at
    the address, and a nats-server without JetStream (as the old one on 4222 of the
    development machines): each one line and exit 2."""
    port = free_port()
    plain = await asyncio.create_subprocess_exec(
        str(find_binary()), "-a", "127.0.0.1", "-p", str(port)
    )
    url = f"nats://127.0.0.1:{port}"
    try:
        await until("the plain nats-server listening", lambda: not port_is_free(port), 10)
        unrelated, nobody, plain_nats = await asyncio.gather(
            kapok_audit_replay(settings, KAPOK_STREAM_PREFIX="NOBODY_"),
            kapok_audit_replay(settings, KAPOK_NATS_URL="nats://127.0.0.1:9"),
            kapok_audit_replay(settings, KAPOK_NATS_URL=url),
        )
    finally:
        plain.terminate()
        await plain.wait()
    assert unrelated[:2] == (2, "")
    assert unrelated[2].splitlines() == [
        f"kapok audit replay: no Kapok streams at {settings.nats_url}: looked for "
        "NOBODY_HOTLINE, NOBODY_AID, NOBODY_DONATION (is this Kapok's bus? --data-dir finds "
        "that of a running `kapok up`, --nats names one)"
    ]
    status, _, err = nobody
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith("kapok audit replay: cannot reach the bus at nats://127.0.0.1:9")
    status, _, err = plain_nats
    assert status == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"kapok audit replay: no JetStream at {url}: looked for the streams")
