"""The audit replay's work split across processes: which stretches of which stream, and the
processes that fold them beside this one.

Why: a replay is CPU-bound in one Python process (decoding each event, re-hashing it, folding
it), so on a machine with more cores the longest stream is cut into consecutive stretches of
stream sequences, folded side by side and added up at the end. Counts are sums, so the order
of the additions does not matter; what does is checked when they are put together: each
stretch's first link against the previous stretch's last hash. Only a stream whose fold
carries no state from one event to the next is cut (`Plan.of` is told which must stay whole:
today the aid stream, whose open requests close on later deliveries).

This process reads the whole streams first, then claims stretches like the others. The others
are worker processes started the one Kapok way (`shared.offload.worker_processes`: fresh
interpreters, about half a second of imports, ending with this process), and claim stretches
from the first: whoever is free takes the next, so the work evens out whatever each
process's start or events cost.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from shared.offload import SPAWN, worker_processes

MIN_SHARE = 100_000
"""Events of the cut stream per process below which no other process is started: starting
one costs it about half a second of imports."""
STRETCHES_PER_PROCESS = 4


@dataclass(frozen=True, slots=True)
class Slice:
    """Stream sequences ``first`` to ``last`` of ``source``'s stream."""

    source: str
    first: int
    last: int

    @property
    def events(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Plan:
    """``whole``: the streams this process reads whole, in order (all of them when nothing is
    cut). ``stretches``: the cut stream in consecutive stretches, which every process claims
    one after the other until none is left, so a process that started late or had slower
    events simply takes fewer."""

    whole: list[Slice]
    stretches: list[Slice]
    processes: int

    @classmethod
    def of(
        cls,
        lasts: Mapping[str, int],
        processes: int,
        *,
        whole: frozenset[str],
        min_share: int = MIN_SHARE,
        stretch: int | None = None,
    ) -> Plan:
        streams = [Slice(source, 1, last) for source, last in lasts.items() if last > 0]
        cuttable = [s for s in streams if s.source not in whole]
        longest = max(cuttable, key=lambda s: s.events, default=None)
        if processes < 2 or longest is None or longest.events < min_share * processes:
            return cls(streams, [], 1)
        size = stretch or -(-longest.events // (processes * STRETCHES_PER_PROCESS))
        stretches = [
            Slice(longest.source, first, min(longest.last, first + size - 1))
            for first in range(1, longest.last + 1, size)
        ]
        return cls([s for s in streams if s is not longest], stretches, processes)

    @property
    def slices(self) -> list[Slice]:
        return [*self.whole, *self.stretches]


class Claims:
    """The stretches claimed in order by any process: a counter in shared memory."""

    def __init__(self, stretches: list[Slice]) -> None:
        self.stretches = stretches
        self.next: Synchronized[int] = SPAWN.Value("i", 0)  # type: ignore[assignment]

    def claim(self) -> Slice | None:
        with self.next.get_lock():
            at = self.next.value
            if at >= len(self.stretches):
                return None
            self.next.value = at + 1
        return self.stretches[at]

    def close(self) -> None:
        """No stretch is claimed any more (those being read are finished)."""
        with self.next.get_lock():
            self.next.value = len(self.stretches)


class Helpers:
    """The other ``count`` processes of a plan: each runs ``target(*args)``, which claims
    stretches (`claimed`) until none is left, counts the events it reads (`read_more`) and
    returns its result."""

    def __init__(self, count: int, claims: Claims, target: Callable[..., Any], *args: Any) -> None:
        self.claims = claims
        self.reads: Synchronized[int] = SPAWN.Value("q", 0)  # type: ignore[assignment]
        self._pool = worker_processes(count, _inherit, (claims, self.reads))
        self._work = [self._pool.submit(target, *args) for _ in range(count)]

    @property
    def read(self) -> int:
        """Events read so far by all of them."""
        return int(self.reads.value)

    async def results(self) -> list[Any]:
        """Each one's result, once all have returned theirs."""
        out = []
        for n, work in enumerate(self._work, start=1):
            try:
                out.append(await asyncio.wrap_future(work))
            except BrokenProcessPool:  # killed, or failed to start
                raise RuntimeError(
                    f"replay process kapok-replay-{n} ended without a result"
                ) from None
            except Exception as error:
                raise RuntimeError(f"replay process kapok-replay-{n} failed: {error!r}") from None
        return out

    def stop(self) -> None:
        self.claims.close()
        self._pool.shutdown(wait=False, cancel_futures=True)


# -- in a helper --------------------------------------------------------------------------

_claims: Claims | None = None
_reads: Synchronized[int] | None = None


def _inherit(claims: Claims, reads: Synchronized[int]) -> None:
    global _claims, _reads
    _claims, _reads = claims, reads


def claimed() -> Slice | None:
    """In a helper: the next stretch nobody has claimed, or None."""
    assert _claims is not None, "not in a replay helper"
    return _claims.claim()


def read_more(events: int) -> None:
    """In a helper: ``events`` more read, for the progress the parent shows."""
    assert _reads is not None, "not in a replay helper"
    with _reads.get_lock():
        _reads.value += events


def processes_wanted(processes: int | None) -> int:
    """The caller's number, else one per core this process may run on."""
    if processes is not None:
        return max(1, processes)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_and_peak() -> tuple[float, int]:
    """This process's CPU seconds so far and its peak resident KiB (VmHWM)."""
    times = os.times()
    peak = 0
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1])
    except OSError:
        pass
    return times.user + times.system, peak
