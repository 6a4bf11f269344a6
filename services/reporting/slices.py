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
start from a fresh interpreter (spawn: no copy of this process's event loop, sockets or
threads), about half a second of imports, and claim stretches from the first: whoever is free
takes the next, so the work evens out whatever each process's start or events cost.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from multiprocessing.sharedctypes import Synchronized
from typing import Any

MIN_SHARE = 100_000
"""Events of the cut stream per process below which no other process is started: starting
one costs it about half a second of imports."""
STRETCHES_PER_PROCESS = 4
# A fresh interpreter for each helper: no copy of this process's event loop, sockets or threads.
_SPAWN = multiprocessing.get_context("spawn")


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
        self.next: Synchronized[int] = _SPAWN.Value("i", 0)  # type: ignore[assignment]

    def claim(self) -> Slice | None:
        with self.next.get_lock():
            at = self.next.value
            if at >= len(self.stretches):
                return None
            self.next.value = at + 1
        return self.stretches[at]


class Helpers:
    """The other ``count`` processes of a plan: each runs ``target(*args, claims, read,
    connection)``, which claims stretches until none is left, keeps ``read`` at the events it
    has read so far, and sends its result (or ``("error", text)``) down ``connection``."""

    def __init__(self, count: int, claims: Claims, target: Callable[..., None], *args: Any) -> None:
        context = _SPAWN
        self.reads: list[Synchronized[int]] = []
        self._processes: list[tuple[SpawnProcess, Connection]] = []
        for n in range(count):
            read: Synchronized[int] = context.Value("q", 0, lock=False)  # type: ignore[assignment]
            receiving, sending = context.Pipe(duplex=False)
            process = context.Process(
                target=target,
                args=(*args, claims, read, sending),
                name=f"kapok-replay-{n + 1}",
                daemon=True,  # never outlives the replay that started it
            )
            process.start()
            sending.close()
            self.reads.append(read)
            self._processes.append((process, receiving))

    @property
    def read(self) -> int:
        """Events read so far by all of them."""
        return sum(int(r.value) for r in self.reads)

    async def results(self) -> list[Any]:
        """Each process's result, once all have sent theirs."""
        return [await _receive(process, receiving) for process, receiving in self._processes]

    def stop(self) -> None:
        for process, receiving in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
            receiving.close()


async def _receive(process: SpawnProcess, receiving: Connection) -> Any:
    # Readable when the result is there, and also once the process has gone (end of file).
    loop = asyncio.get_running_loop()
    readable = loop.create_future()
    loop.add_reader(receiving.fileno(), lambda: readable.done() or readable.set_result(None))
    try:
        await readable
    finally:
        loop.remove_reader(receiving.fileno())
    try:
        outcome = receiving.recv()
    except EOFError:  # it ended without sending anything (killed, or failed to start)
        process.join(timeout=5)
        raise RuntimeError(
            f"replay process {process.name} ended without a result (exit code {process.exitcode})"
        ) from None
    process.join(timeout=5)
    if isinstance(outcome, tuple) and outcome and outcome[0] == "error":
        raise RuntimeError(f"replay process {process.name} failed: {outcome[1]}")
    return outcome


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
