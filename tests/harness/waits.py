"""Ports and waits: the one harness every test uses to take a free port and to wait for
something to become true.

A wait is always for a positive event with a deadline, never a fixed sleep: a test that
asserts that something did not happen first waits for what would have come before it (the
consumer acknowledged the last message, the page redrew), and only then asserts.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
import nats

from bench.load import free_port  # the benchmarks' too: one implementation

__all__ = ["NOT_YET", "free_port", "until", "until_now"]

T = TypeVar("T")

EVERY = 0.05
"""Seconds between two looks: short against any deadline, long against a look's cost."""

NOT_YET: tuple[type[BaseException], ...] = (httpx.TransportError, nats.errors.Error, OSError)
"""A look that meets these has not seen it yet (a server still starting, a reconnect)."""


async def until(
    what: str,
    check: Callable[[], T | Awaitable[T]],
    within: float = 30.0,
    *,
    every: float = EVERY,
    in_thread: bool = False,
) -> T:
    """``check()``'s first truthy answer (awaited when it is a coroutine; in a thread with
    ``in_thread``, for a blocking look while the service runs in this loop), looked at every
    ``every`` seconds; else fail saying ``what`` did not happen within ``within`` seconds,
    with the last answer seen. `NOT_YET` errors count as a falsy answer."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            answer = await asyncio.to_thread(check) if in_thread else check()
            if inspect.isawaitable(answer):
                answer = await answer
            last = answer
        except NOT_YET as error:
            last = error
        else:
            if answer:
                return answer  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} within {within} s (last seen: {last!r})")
        await asyncio.sleep(every)


def until_now(what: str, check: Callable[[], T], within: float = 30.0, every: float = 0.2) -> T:
    """`until` for a test that is not a coroutine (it blocks this thread between looks)."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = check()
        except NOT_YET as error:
            last = error
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} within {within} s (last seen: {last!r})")
        time.sleep(every)
