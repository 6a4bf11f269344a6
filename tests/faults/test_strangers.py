"""Strangers on the bus during the 2020 scenario: on every stream's subjects, mid-play, a stray
publish (``hello``), garbage (a real event cut in half) and a forged envelope (a real event
again, a new id, re-hashed, its position the sequence it lands at: only its chain link is
wrong). Each relay stops and says so, naming the stranger, while commands still succeed; the
consumers dead-letter what they read of them; `kapok bus repair` starts each stream again
from its store and the scenario ends with the figures exact: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from fault_parts import (
    Play,
    assert_exact,
    bus,
    health,
    kapok,
    kapok_up,
    sqlite_stores,
    status,
    streams_hold_stores,
)
from nacl.signing import SigningKey
from up_parts import Up, wait_until

from shared.bus.auth import ADMIN
from shared.bus.naming import Naming
from shared.contracts.envelope import seal
from shared.contracts.signatures import Signer
from shared.settings import PRODUCERS

pytestmark = pytest.mark.timeout(420)
SEED = 19
NAMING = Naming()
STRANGER = Signer("any", ((1, SigningKey.generate()),))  # signs for whichever source it names


@dataclass(frozen=True)
class Stranger:
    seq: int
    subject: str


def test_strangers_on_every_stream_stop_its_relay_visibly_and_a_repair_loses_nothing(
    tmp_path: Path,
) -> None:
    with kapok_up(tmp_path / "state", "up.log") as up:
        play = Play(up, SEED, speed=2.0)
        try:
            # Given the scenario playing, when strangers publish on every stream's subjects,
            play.reaches(8)
            first = asyncio.run(publish_strangers(up))
            # then each source's relay stops on the first, and its health says where and
            # what it is (not ready), while its commands still succeed, their events waiting,
            for source, stranger in first.items():
                wait_until(f"{source}'s relay stops", lambda s=source: relay_stopped(up, s), 60, up)
                _, body = health(up, source)
                said = body["relay"]["stopped"]
                assert f"at sequence {stranger.seq} a message on {stranger.subject}" in said
                assert "'When a relay stops'" in said
                assert status(up)[source].status == "down"
            waiting = health(up, "hotline")[1]["relay"]
            wait_until(
                "hotline commands stored, unpublished", lambda: piled_up(up, waiting), 30, up
            )
            # and reporting, which read them, says it dead-lettered them (degraded, not ok).
            wait_until("reporting names its dead letters", lambda: dead_lettered(up), 30, up)
            # (The proof every fault story ends with sees the strangers: it fails here.)
            with pytest.raises(AssertionError, match="HOTLINE"):
                asyncio.run(streams_hold_stores(up, sqlite_stores(up)))
            # The auditor lists every stranger (the stray, the garbage, the forged envelope)
            # by stream and sequence, and says so in its exit status.
            audit = kapok("audit", "replay", "--no-compare", "--data-dir", str(up.data_dir))
            assert audit.returncode == 1, audit.stdout + audit.stderr[-3000:]
            for source, stranger in first.items():
                for seq in range(stranger.seq, stranger.seq + 3):
                    named = f"FINDING {NAMING.stream(source)} sequence {seq} "
                    assert named in audit.stderr, audit.stderr[-3000:]
            # When each stream is repaired,
            for source, stranger in first.items():
                repaired = kapok("bus", "repair", source, "--data-dir", str(up.data_dir))
                assert repaired.returncode == 0, repaired.stdout + repaired.stderr
                assert f"sequence {stranger.seq} ({stranger.subject})" in repaired.stdout
                evidence = re.search(r"kept, sealed, in (\S+);", repaired.stdout)
                assert evidence, repaired.stdout
                kept = asyncio.run(held_at(up, evidence[1], stranger.seq))
                assert kept == b"hello", f"{evidence[1]} lost the stray: {kept!r}"
            # then every relay publishes again and the scenario ends with the scaled figures,
            play.finish()
        finally:
            play.kill()
        # the audit agrees, and each stream holds its store's history exactly, once.
        assert_exact(up, sqlite_stores(up))
        for source in PRODUCERS:
            assert health(up, source)[1]["relay"]["stopped"] is None
        # Every process serves again; the readers of a stream that held strangers stay
        # degraded, naming the dead letters someone must look at.
        rows = status(up)
        assert all(row.status in ("ok", "degraded") for row in rows.values()), rows
        assert rows["reporting"].status == "degraded", rows["reporting"].lines()
        assert up.ctrl_c() == 0, up.log()


async def publish_strangers(up: Up) -> dict[str, Stranger]:
    """On each source's subjects: a stray, garbage and a forged envelope; the first of them."""
    first: dict[str, Stranger] = {}
    async with bus(up, ADMIN) as nc:  # whoever holds its key may publish anywhere
        js = nc.jetstream()
        for source in PRODUCERS:
            stream = NAMING.stream(source)
            last = (await js.stream_info(stream)).state.last_seq
            assert last > 0, f"{stream} is still empty on day 8"
            real = await js.get_msg(stream, seq=last)
            stray = NAMING.event_subject(source, "Oops")
            ack = await js.publish(stray, b"hello")
            first[source] = Stranger(ack.seq, stray)
            ack = await js.publish(real.subject, real.data[: len(real.data) // 2])
            body = orjson.loads(real.data)
            body.pop("sig", None)
            body.update(event_id=str(uuid.uuid4()), position=ack.seq + 1)
            headers = {"Nats-Expected-Last-Sequence": str(ack.seq)}
            # Signed too, with the stranger's own key (it holds none of the source's).
            forged = STRANGER.sign(seal(body), body["position"], body["hash"])
            await js.publish(real.subject, forged, headers=headers)
    return first


async def held_at(up: Up, stream: str, seq: int) -> bytes:
    async with bus(up, ADMIN) as nc:
        return bytes((await nc.jetstream().get_msg(stream, seq=seq)).data)


def relay_stopped(up: Up, source: str) -> bool:
    code, body = health(up, source)
    return code == 503 and bool(body["relay"]["stopped"])


def piled_up(up: Up, before: dict[str, int]) -> bool:
    relay = health(up, "hotline")[1]["relay"]
    return relay["head"] > before["head"] and relay["position"] == before["position"]


def dead_lettered(up: Up) -> bool:
    """Reporting has set aside the three strangers of every source, and says so."""
    code, body = health(up, "reporting")
    sources = body.get("consumers", {}).get("reporting", {}).values()
    return (
        code == 200
        and body["status"] == "degraded"
        and [s["dead_letters"] for s in sources] == [3] * len(PRODUCERS)
        and all(f"{s}: 3 dead letters" in str(body["problems"]) for s in PRODUCERS)
    )
