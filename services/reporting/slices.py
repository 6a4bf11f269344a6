"""The audit replay's work split across processes: which stretches of which stream, and the
processes that replay the stretches this one does not.

Why: a replay is CPU-bound in one Python process (decoding each event, re-hashing it, folding
it), so on a machine with more cores a long stream is cut into consecutive stretches of stream
sequences, one per process, each folded on its own and added up at the end. Counts are sums,
so the order of the additions does not matter; what does is checked when they are put
together: each stretch's first link against the previous stretch's last hash. Only streams
whose fold carries no state from one event to the next are cut (`Slice.plan` is told which
must stay whole: today the aid stream, whose open requests close on later deliveries).

A stretch in another process is started from a fresh interpreter (spawn: no copy of this
process's event loop, sockets or threads), which costs it about half a second of imports, so
stretches are never shorter than ``min_slice`` events.
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

MIN_SLICE = 100_000


@dataclass(frozen=True, slots=True)
class Slice:
    """Stream sequences ``first`` to ``last`` of ``source``'s stream."""

    source: str
    first: int
    last: int

    @property
    def events(self) -> int:
        return self.last - self.first + 1

    @staticmethod
    def plan(
        lasts: Mapping[str, int],
        processes: int,
        *,
        whole: frozenset[str],
        min_slice: int = MIN_SLICE,
    ) -> list[Slice]:
        """The stretches, in stream order per source: the first of each source for this
        process, the others (only of the longest stream that may be cut) one per other
        process. This process's share is what is left of an even split once it has taken
        the sources that stay whole."""
        out = [Slice(source, 1, last) for source, last in lasts.items() if last > 0]
        cuttable = [s for s in out if s.source not in whole]
        if processes < 2 or not cuttable:
            return out
        longest = max(cuttable, key=lambda s: s.events)
        share = sum(s.events for s in out) // processes
        mine = share - sum(s.events for s in out if s is not longest)
        others = processes - 1
        if mine < min_slice or (longest.events - mine) // others < min_slice:
            return out
        pieces = [Slice(longest.source, 1, mine)]
        size = -(-(longest.events - mine) // others)  # ceiling
        for first in range(mine + 1, longest.last + 1, size):
            pieces.append(Slice(longest.source, first, min(longest.last, first + size - 1)))
        at = out.index(longest)
        return [*out[:at], *pieces, *out[at + 1 :]]


def processes_wanted(processes: int | None) -> int:
    """The caller's number, else one per core this process may run on."""
    if processes is not None:
        return max(1, processes)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SliceProcess:
    """A stretch replayed in a process of its own: ``target(*args, progress, connection)``
    runs there, reports the sequences it has read through ``progress`` and sends its result
    (or ``("error", text)``) down ``connection``."""

    def __init__(self, slice_: Slice, target: Callable[..., None], *args: Any) -> None:
        context = multiprocessing.get_context("spawn")
        self.slice = slice_
        self.progress: Synchronized[int] = context.Value("q", 0, lock=False)  # type: ignore[assignment]
        self._receiving, sending = context.Pipe(duplex=False)
        self._process: SpawnProcess = context.Process(
            target=target,
            args=(*args, slice_, self.progress, sending),
            name=f"kapok-replay-{slice_.source}-{slice_.first}",
            daemon=True,  # never outlives the replay that started it
        )
        self._process.start()
        sending.close()

    @property
    def read(self) -> int:
        """Events of the stretch read so far."""
        return int(self.progress.value)

    async def result(self) -> Any:
        """The stretch's result, once the process sends it."""
        receiving: Connection = self._receiving
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
            self._process.join(timeout=5)
            raise RuntimeError(
                f"replay of {self.slice} ended without a result "
                f"(exit code {self._process.exitcode})"
            ) from None
        self._process.join(timeout=5)
        if isinstance(outcome, tuple) and outcome and outcome[0] == "error":
            raise RuntimeError(f"replay of {self.slice} failed in its process: {outcome[1]}")
        return outcome

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)
        self._receiving.close()


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
