"""The headline totals in a NATS KV bucket, so any NATS client can watch the figures live.

One key per figure of the report (``services_given``, ``funds_raised_yuan`` …), its value the
figure as text (money with two places). Written after commits, never inside the fold's
transaction: the bucket is a copy that the counters can always rebuild, so a put lost in a
crash is simply made again by the next one (every put sends the whole current value).
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.client import Client as NATS
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from services.reporting.adapters.counters import CounterStore
from services.reporting.domain.report import figures
from shared.bus.naming import Naming
from shared.eventstore.database import Database

log = logging.getLogger("kapok.reporting.kv")


def bucket_name(naming: Naming) -> str:
    return f"{naming.stream_prefix}REPORTING_TOTALS"


async def open_bucket(nc: NATS, naming: Naming, replicas: int = 1) -> KeyValue:
    js = nc.jetstream()
    try:
        # Made by the administrator's identity under `kapok up` (reporting's may not create
        # streams, a bucket's included: README, "The bus's identities").
        return await js.key_value(bucket_name(naming))
    except BucketNotFoundError:
        # As many replicas as the streams: a cluster that loses a node keeps its figures.
        return await js.create_key_value(bucket=bucket_name(naming), history=1, replicas=replicas)


async def publish_totals(
    kv: KeyValue, store: CounterStore, db: Database, stop: asyncio.Event, every: float = 0.1
) -> None:
    """Until ``stop``: after each commit of the consumer (or every second), but at most once
    per ``every`` seconds, put the figures that changed. Unthrottled, a consumer committing
    hundreds of small batches a second (a steady stream of commands) had this loop read the
    totals and await a put per changed figure after each one, in the process that folds.
    The flag, not only cancellation, ends it: on Python 3.11 a cancel that lands while
    `Database.wait_for_change` (asyncio.wait_for) is completing is swallowed, and a loop
    relying on it alone would never end."""
    last: dict[str, str] = {}
    failing_since: float | None = None  # said once when it starts failing, once when it ends
    while not stop.is_set():
        try:
            for name, value in figures(await store.totals(None)).items():
                text = str(value)
                if last.get(name) != text:
                    await kv.put(name, text.encode())
                    last[name] = text
            if failing_since is not None:
                took = time.monotonic() - failing_since
                log.warning("reporting KV: publishing again after %.1f s", took)
                failing_since = None
        except Exception as error:  # NATS or the database away: try again on the next turn
            if failing_since is None:
                failing_since = time.monotonic()
                log.warning("reporting KV: %r; trying again every second", error)
            last.clear()
        await asyncio.sleep(every)  # a commit meanwhile still wakes the wait below at once
        await db.wait_for_change(1.0)
