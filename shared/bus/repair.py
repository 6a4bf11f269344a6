"""Repair a source's stream that holds something its store does not (`kapok bus repair`).

A stream's sequence n must hold its source's event at position n: the relay refuses to
publish onto a stream that holds a stranger's message (a stray or forged publish), since
the stranger's message took a place no real event can take any more. JetStream cannot take a
message back out of the sequence (deletes leave the sequence where it was, and Kapok's
streams deny them anyway), so the repair starts the stream again:

1. the stream's messages are copied into ``<STREAM>_EVIDENCE_<time>``, which is then sealed
   (no more writes, deletes or purges: the stranger's message is kept as evidence, with the
   sequence it had in the ``Nats-Stream-Source`` header);
2. the stream is deleted and made again, empty, with Kapok's config;
3. the source's relay finds it behind its progress and publishes the store's whole history
   again with the same ids and sequence numbers; each consumer finds its durable gone and
   examines again the positions it dead-lettered as a stranger's (`shared.consumer`), so
   events are neither lost nor applied twice.

The command refuses a stream whose every message is its source's event at its position with
an intact hash chain (nothing to repair), unless forced: a forgery that keeps the chain whole
is seen only by the relay, which compares the stream with its store.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import NotFoundError

from shared.bus.provision import StreamSpec, ensure_streams
from shared.contracts.envelope import GENESIS
from shared.contracts.registry import REGISTRY, UndecodableEvent


@dataclass(frozen=True, slots=True)
class Finding:
    seq: int
    subject: str
    reason: str


@dataclass(frozen=True, slots=True)
class Repaired:
    stream: str
    messages: int
    evidence: str
    finding: Finding | None


class NothingToRepair(RuntimeError):
    pass


async def first_finding(nc: NATS, stream: str, source: str, batch: int = 1000) -> Finding | None:
    """The first message of the stream that is not ``source``'s event at its position, with
    the hash its bytes make and the link to the one before; None if there is none."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        "",
        stream=stream,
        config=api.ConsumerConfig(
            ack_policy=api.AckPolicy.NONE,
            deliver_policy=api.DeliverPolicy.ALL,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    last = (await js.stream_info(stream)).state.last_seq
    prev, seq = GENESIS, 0
    try:
        while seq < last:
            for msg in await sub.fetch(min(batch, last - seq), timeout=10):
                seq = msg.metadata.sequence.stream
                try:
                    event = REGISTRY.decode_at(msg.data, source, seq)
                except UndecodableEvent as error:
                    return Finding(seq, msg.subject, str(error))
                if event.prev_hash != prev:
                    return Finding(seq, msg.subject, "its prev_hash is not the hash before it")
                prev = event.hash
    finally:
        await sub.unsubscribe()
    return None


async def repair(
    nc: NATS, spec: StreamSpec, source: str, *, force: bool = False, wait_s: float = 120.0
) -> Repaired:
    js = nc.jetstream()
    info = await js.stream_info(spec.name)
    finding = await first_finding(nc, spec.name, source)
    if finding is None and not force:
        raise NothingToRepair(
            f"{spec.name} holds {info.state.messages} messages, each {source}'s event at its "
            f"position with its hash chain intact: nothing to repair (--force repairs all the "
            f"same, e.g. when the relay reports a forgery that keeps the chain whole)"
        )
    evidence = f"{spec.name}_EVIDENCE_{datetime.now(UTC):%Y%m%dT%H%M%S}"
    config = api.StreamConfig(
        name=evidence,
        description=f"{spec.name} as it was before `kapok bus repair`: kept as evidence",
        storage=api.StorageType.FILE,
        num_replicas=spec.replicas,
        sources=[api.StreamSource(name=spec.name)],
        deny_delete=True,
        deny_purge=True,
    )
    await js.add_stream(config)
    async with asyncio.timeout(wait_s):
        # The server copies in the background and tells no one when it is done: poll.
        while (await js.stream_info(evidence)).state.messages < info.state.messages:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    config.sources = None
    config.sealed = True
    await js.update_stream(config)
    with contextlib.suppress(NotFoundError):  # gone already: a repair that was interrupted
        await js.delete_stream(spec.name)
    await ensure_streams(nc, [spec])
    return Repaired(spec.name, info.state.messages, evidence, finding)
