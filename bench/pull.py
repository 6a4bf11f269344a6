"""Pull measures on a stream the relay filled: the raw limit on nats-py's core connection,
nats-py's fetch, FastStream's batch subscriber, and Kapok's consumer runner. Each reads the
whole stream with a new durable consumer and returns seconds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api
from sqlalchemy.ext.asyncio import AsyncConnection

from services.reporting.audit import replay_consumer
from shared.bus.naming import Naming
from shared.consumer import ConsumerRunner
from shared.contracts.envelope import Envelope
from shared.contracts.signatures import Ring
from shared.eventstore import Database

BATCH = 1000
MAX_ACK_PENDING = 20_000  # as the runner's consumers


class PullFailed(RuntimeError):
    pass


def _explicit_ack(durable: str) -> api.ConsumerConfig:
    return api.ConsumerConfig(
        durable_name=durable,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=60.0,
        max_ack_pending=MAX_ACK_PENDING,
    )


async def raw_pull(nc: NATS, stream: str, durable: str, total: int) -> float:
    """Batched ``$JS.API.CONSUMER.MSG.NEXT`` requests on one inbox; a callback acks each
    message (``+ACK`` to its reply subject) and asks for the next batch when one is done."""
    await nc.jetstream().add_consumer(stream, _explicit_ack(durable))
    return await _timed_pull(nc, stream, durable, total, ack=True)


async def raw_pull_no_ack(nc: NATS, stream: str, total: int) -> float:
    """The same loop on the audit replay's kind of consumer (ephemeral, AckPolicy NONE):
    nothing sent back per message, the ceiling the replay is held against."""
    js = nc.jetstream()
    consumer = await js.add_consumer(stream, replay_consumer())
    try:
        return await _timed_pull(nc, stream, consumer.name, total, ack=False)
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(stream, consumer.name)


async def _timed_pull(nc: NATS, stream: str, consumer: str, total: int, ack: bool) -> float:
    inbox = nc.new_inbox()
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
    request = orjson.dumps({"batch": BATCH, "expires": 5_000_000_000})
    publish = nc.publish
    done = asyncio.Event()
    state = {"got": 0, "in_batch": 0}

    async def on_message(msg: Msg) -> None:
        if msg.reply:
            if ack:
                await publish(msg.reply, b"+ACK")
            state["got"] += 1
            state["in_batch"] += 1
            if state["got"] >= total:
                done.set()
                return
            if state["in_batch"] < BATCH:
                return
        # The batch is complete, or a status (408 expired) ended the request: ask again.
        state["in_batch"] = 0
        await publish(subject, request, reply=inbox)

    sub = await nc.subscribe(inbox, cb=on_message)
    began = time.perf_counter()
    await publish(subject, request, reply=inbox)
    await asyncio.wait_for(done.wait(), 300)
    if ack:
        await nc.flush()  # the last acks reached the server
    elapsed = time.perf_counter() - began
    await sub.unsubscribe()
    return elapsed


async def js_fetch(nc: NATS, naming: Naming, source: str, durable: str, total: int) -> float:
    """nats-py's ``js.pull_subscribe`` and ``fetch(1000)``, ``await msg.ack()`` on each."""
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        naming.event_subjects(source),
        durable=durable,
        stream=naming.stream(source),
        config=_explicit_ack(durable),
    )
    got = 0
    began = time.perf_counter()
    while got < total:
        for msg in await sub.fetch(BATCH, timeout=5):
            await msg.ack()
            got += 1
    await nc.flush()
    elapsed = time.perf_counter() - began
    await sub.unsubscribe()
    return elapsed


async def faststream_batch(
    url: str, naming: Naming, source: str, durable: str, total: int
) -> float:
    """FastStream's pull subscriber with ``PullSub(batch=True)``, acking each message."""
    from faststream import AckPolicy
    from faststream.nats import JStream, NatsBroker, PullSub

    broker = NatsBroker(url, logger=None)
    done = asyncio.Event()
    state = {"got": 0}

    @broker.subscriber(
        naming.event_subjects(source),
        stream=JStream(naming.stream(source), declare=False),
        durable=durable,
        config=api.ConsumerConfig(max_ack_pending=MAX_ACK_PENDING),
        pull_sub=PullSub(batch_size=BATCH, batch=True, timeout=1.0),
        ack_policy=AckPolicy.ACK,
    )
    async def handle(bodies: list[Any]) -> None:
        state["got"] += len(bodies)
        if state["got"] >= total:
            done.set()

    began = time.perf_counter()
    await broker.start()
    try:
        await asyncio.wait_for(done.wait(), 60 + total / 1000)
        elapsed = time.perf_counter() - began
    finally:
        await broker.stop()
    return elapsed


async def _count(conn: AsyncConnection, events: Sequence[Envelope[Any]]) -> None:
    """The trivial handler: the runner's own work (decode, checkpoint, ack) is measured."""


async def runner_drain(
    nc: NATS,
    naming: Naming,
    source: str,
    url: str,
    durable: str,
    total: int,
    ring: Ring | None = None,
) -> float:
    """``ConsumerRunner.drain(source)`` from zero: decode into the event models, check each
    event's hash and link (and with ``ring``, that a signature covers it), commit the
    checkpoint per batch in the database at ``url``, ack."""
    db = Database(url)
    try:
        runner = ConsumerRunner(
            nc=nc,
            db=db,
            naming=naming,
            name=durable,
            sources=[source],
            handler=_count,
            ring=ring,
        )
        await runner.setup()
        began = time.perf_counter()
        applied = await runner.drain(source)
        await nc.flush()
        elapsed = time.perf_counter() - began
    finally:
        await db.dispose()
    stats = runner.stats[source]
    if applied != total or stats.dead_letters:
        raise PullFailed(f"runner applied {applied} of {total}, {stats.dead_letters} dead")
    return elapsed
