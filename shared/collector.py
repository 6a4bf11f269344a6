"""The garbage collector of every Kapok process (the services, the audit replay and its
helpers, the fold worker), tuned for batches of events. A module of its own, importing
nothing, so that a worker process tunes it without importing NATS or a database driver."""

from __future__ import annotations

import gc


def tune_gc() -> None:
    """Call once a service has started. Decoding a batch of events allocates thousands of
    objects, which set off full collections of the whole heap every few thousand events:
    about a quarter of the consumer runner's CPU when measured. Freezing the start-up heap
    and raising the first threshold cut that to a few percent. At 500,000 (was 50,000) a
    young collection seldom finds a batch of decoded events still alive, to be walked again
    as they age: the live fold about 6% faster when measured (batches of 2,500). Only
    reference cycles wait for it; everything else is freed as it is dropped."""
    gc.freeze()
    gc.set_threshold(500_000, 20, 20)
