"""The raw pull without acknowledgements: the ceiling the audit replay is held against.

The foundation's raw pull (`bench.pull.raw_pull`: batched ``$JS.API.CONSUMER.MSG.NEXT`` on
one inbox, nats-py's core connection) with the one thing an auditor does differently: its
consumer is ephemeral with AckPolicy NONE, so nothing is sent back per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import orjson
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api

from bench.pull import BATCH


async def raw_pull_no_ack(nc: NATS, stream: str, total: int) -> float:
    """Seconds to read the first ``total`` messages of ``stream``: a callback counts each and
    asks for the next batch when one is done (or a status ended the request)."""
    js = nc.jetstream()
    consumer = await js.add_consumer(
        stream,
        api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL,
            ack_policy=api.AckPolicy.NONE,
            inactive_threshold=60.0,
            mem_storage=True,
        ),
    )
    inbox = nc.new_inbox()
    subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer.name}"
    request = orjson.dumps({"batch": BATCH, "expires": 5_000_000_000})
    publish = nc.publish
    done = asyncio.Event()
    state = {"got": 0, "in_batch": 0}

    async def on_message(msg: Msg) -> None:
        if msg.reply:
            state["got"] += 1
            state["in_batch"] += 1
            if state["got"] >= total:
                done.set()
                return
            if state["in_batch"] < BATCH:
                return
        state["in_batch"] = 0
        await publish(subject, request, reply=inbox)

    sub = await nc.subscribe(inbox, cb=on_message)
    began = time.perf_counter()
    await publish(subject, request, reply=inbox)
    await asyncio.wait_for(done.wait(), 300)
    elapsed = time.perf_counter() - began
    await sub.unsubscribe()
    with contextlib.suppress(Exception):
        await js.delete_consumer(stream, consumer.name)
    return elapsed
