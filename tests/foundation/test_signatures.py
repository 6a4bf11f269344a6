"""Signed history: each producing service signs its chain's head every few events; consumers of
every event apply only what a signature by its source's key covers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from harness.calls import calls
from nacl.signing import SigningKey
from test_consumer_runner import applied_positions, runner_on

from shared import signing
from shared.bus.naming import Naming
from shared.contracts import Context
from shared.contracts.envelope import hashes_to, seal
from shared.contracts.registry import REGISTRY
from shared.contracts.signatures import EVERY, Ring, Signer, signature_in
from shared.eventstore import Database, EventStore
from shared.relay import OutboxRelay


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    return tmp_path / "signing"


@pytest.fixture
def signed_store(store: EventStore, keys: Path) -> EventStore:
    store.signer = signing.signer(keys, "hotline")
    return store


def ring_of(keys: Path) -> Ring:
    ring = signing.ring(keys)
    assert ring is not None
    return ring


async def test_every_few_events_and_each_appends_last_are_signed_and_verify(
    signed_store: EventStore, keys: Path
) -> None:
    await signed_store.append_all(calls(0, 1203), Context())
    await signed_store.append_all(calls(1203, 2), Context())

    rows = await signed_store.read_bytes_from(0, 2000)
    signed = [row.position for row in rows if signature_in(row.body)]
    assert signed == [EVERY, 2 * EVERY, 1203, 1205]
    ring = ring_of(keys)
    for row in rows:
        event = REGISTRY.decode_at(row.body, "hotline", row.position)
        assert hashes_to(row.body, event.hash)  # the signature is not part of the hash
        if found := signature_in(row.body):
            assert found[0] == event.hash
            assert ring.check("hotline", row.position, *found) is None
    # Another source's name, or another position, is not what was signed.
    event_hash, sig = signature_in(rows[-1].body)  # type: ignore[misc]
    assert ring.check("aid", 1205, event_hash, sig) is not None
    assert "does not verify" in str(ring.check("hotline", 1204, event_hash, sig))


async def test_a_rotated_key_signs_from_its_position_and_older_events_still_verify(
    signed_store: EventStore, keys: Path
) -> None:
    await signed_store.append_all(calls(0, 300), Context())
    old = signed_store.signer
    signing.rotate(keys, "hotline", head=300)
    signed_store.signer = signing.signer(keys, "hotline")  # as after the service's restart
    await signed_store.append_all(calls(300, 5), Context())

    rows = await signed_store.read_bytes_from(0, 400)
    ring = ring_of(keys)
    kids = {row.position: signature_in(row.body)[1][:16] for row in rows if signature_in(row.body)}  # type: ignore[index]
    assert kids[300] != kids[305]
    for position in (300, 305):
        assert ring.check("hotline", position, *signature_in(rows[position - 1].body)) is None  # type: ignore[misc]
    # The retired key signs nothing after its successor took over.
    assert old is not None
    late = old.sign(seal(_unsigned(rows[304].body)), 305, orjson.loads(rows[304].body)["hash"])
    assert "not valid at position 305" in str(ring.check("hotline", 305, *signature_in(late)))  # type: ignore[misc]


def _unsigned(raw: bytes) -> dict[str, Any]:
    body = orjson.loads(raw)
    body.pop("sig", None)
    return body


async def test_only_what_the_sources_key_signed_is_applied(
    signed_store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    keys: Path,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    """Given 1,203 signed events, when a stranger who can publish (the administrator's
    credentials, say) but holds no key adds two events that link and hash correctly, one
    unsigned and one signed with a key of its own, then the consumer applies the 1,203, holds
    the unsigned one back, and once the badly signed one follows, dead-letters it as forged
    and the unsigned one before it as unsigned: neither is folded."""
    await signed_store.append_all(calls(0, 1203), Context())
    await OutboxRelay(signed_store, nc, naming).publish_pending()
    js = nc.jetstream()
    last = orjson.loads((await js.get_msg(naming.stream("hotline"), seq=1203)).data)
    forged = {**_unsigned(orjson.dumps(last)), "position": 1204, "prev_hash": last["hash"]}
    raw = seal(forged)
    await js.publish(naming.event_subject("hotline", "CallReceived"), raw)
    runner = await runner_on(reporting_db, nc, naming, batch=250, ring=ring_of(keys))

    await runner.drain("hotline")

    stats = runner.stats["hotline"]
    assert await applied_positions(reporting_db) == list(range(1, 1204))
    assert (stats.checkpoint, stats.unsigned_held, stats.dead_letters) == (1203, 1, 0)
    assert stats.unsigned_since is not None  # health says so once it has waited a while

    stranger = Signer("hotline", ((1, SigningKey.generate()),))
    second = {
        **_unsigned(orjson.dumps(last)),
        "position": 1205,
        "prev_hash": orjson.loads(raw)["hash"],
    }
    sealed = seal(second)
    await js.publish(
        naming.event_subject("hotline", "CallReceived"),
        stranger.sign(sealed, 1205, second["hash"]),
    )
    runner = await runner_on(reporting_db, nc, naming, batch=250, ring=ring_of(keys))  # restart
    await runner.drain("hotline")

    stats = runner.stats["hotline"]
    assert await applied_positions(reporting_db) == list(range(1, 1204))
    assert (stats.checkpoint, stats.dead_letters, stats.forged) == (1205, 2, 1)
    letter = await last_dead_letter()
    assert letter["stream_seq"] == 1205
    assert letter["reason"].startswith("forged: signed with a key")


async def test_an_unsigned_event_where_its_source_always_signs_is_forged_at_once(
    signed_store: EventStore,
    nc: nats.NATS,
    naming: Naming,
    reporting_db: Database,
    keys: Path,
    last_dead_letter: Callable[[], Awaitable[dict[str, Any]]],
) -> None:
    await signed_store.append_all(calls(0, EVERY - 1), Context())
    await OutboxRelay(signed_store, nc, naming).publish_pending()
    js = nc.jetstream()
    last = orjson.loads((await js.get_msg(naming.stream("hotline"), seq=EVERY - 1)).data)
    forged = {**_unsigned(orjson.dumps(last)), "position": EVERY, "prev_hash": last["hash"]}
    await js.publish(naming.event_subject("hotline", "CallReceived"), seal(forged))
    runner = await runner_on(reporting_db, nc, naming, ring=ring_of(keys))

    await runner.drain("hotline")

    assert await applied_positions(reporting_db) == list(range(1, EVERY))
    assert runner.stats["hotline"].forged == 1
    assert "always signs" in (await last_dead_letter())["reason"]


async def test_a_signed_history_read_in_small_batches_is_applied_whole_and_once(
    signed_store: EventStore, nc: nats.NATS, naming: Naming, reporting_db: Database, keys: Path
) -> None:
    for start in range(0, 1500, 300):  # appends of 300: signed at 300, 500, 600, 900, …
        await signed_store.append_all(calls(start, 300), Context())
    await OutboxRelay(signed_store, nc, naming, chunk=170).publish_pending()
    runner = await runner_on(reporting_db, nc, naming, batch=120, ring=ring_of(keys))

    await runner.drain("hotline")

    assert await applied_positions(reporting_db) == list(range(1, 1501))
    assert runner.stats["hotline"].unsigned_held == 0
