"""Publish measures: the raw limit on nats-py's core connection, nats-py's publish_async,
and Kapok's outbox relay. Each returns seconds for its events, on a fresh, empty stream."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from bench.data import Message, reset_progress
from shared.bus.naming import Naming
from shared.eventstore import EventStore
from shared.relay import OutboxRelay


class PublishFailed(RuntimeError):
    pass


async def raw_publish(
    nc: NATS, naming: Naming, source: str, msgs: list[Message], *, relay_headers: bool = False
) -> float:
    """Pipelined ``nc.publish`` of every message with a reply subject on one inbox
    subscription; a callback counts the PubAcks. ``relay_headers`` adds the relay's
    expected-last-sequence header to Nats-Msg-Id."""
    inbox = nc.new_inbox()
    prefix = naming.event_subject(source, "")
    done = asyncio.Event()
    state = {"acks": 0, "errors": 0, "first_error": b""}
    total = len(msgs)

    async def on_ack(msg: Msg) -> None:
        if not msg.data or b'"error"' in msg.data:
            state["errors"] += 1
            state["first_error"] = state["first_error"] or msg.data or b"status reply"
        state["acks"] += 1
        if state["acks"] == total:
            done.set()

    sub = await nc.subscribe(inbox + ".*", cb=on_ack)
    publish = nc.publish
    began = time.perf_counter()
    for seq, (event_type, body, event_id) in enumerate(msgs, start=1):
        if relay_headers:
            headers = {
                "Nats-Msg-Id": event_id,
                "Nats-Expected-Last-Sequence": str(seq - 1),
            }
        else:
            headers = {"Nats-Msg-Id": event_id}
        await publish(prefix + event_type, body, reply=f"{inbox}.{seq}", headers=headers)
    await asyncio.wait_for(done.wait(), 120)
    elapsed = time.perf_counter() - began
    await sub.unsubscribe()
    if state["errors"]:
        raise PublishFailed(f"{state['errors']} publishes refused: {state['first_error']!r}")
    return elapsed


async def js_publish_async(nc: NATS, naming: Naming, source: str, msgs: list[Message]) -> float:
    """nats-py's ``js.publish_async`` (futures, a semaphore of 4000 in flight)."""
    js = nc.jetstream(publish_async_max_pending=4000)
    prefix = naming.event_subject(source, "")
    began = time.perf_counter()
    futures = [
        await js.publish_async(prefix + event_type, body, headers={"Nats-Msg-Id": event_id})
        for event_type, body, event_id in msgs
    ]
    await asyncio.wait_for(js.publish_async_completed(), 120)
    elapsed = time.perf_counter() - began
    for future in futures:
        future.result()  # raises on a refused publish
    return elapsed


async def relay_publish(nc: NATS, naming: Naming, store: EventStore, expected: int) -> float:
    """``OutboxRelay.publish_pending()`` from zero: the whole store onto an empty stream."""
    await reset_progress(store)
    relay = OutboxRelay(store, nc, naming)
    await relay.reconcile()
    began = time.perf_counter()
    published = await relay.publish_pending()
    elapsed = time.perf_counter() - began
    if published != expected or relay.stats.published != expected:
        raise PublishFailed(
            f"relay published {published} ({relay.stats.published} acked), not {expected}"
        )
    return elapsed
