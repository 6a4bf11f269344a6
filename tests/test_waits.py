"""The harness's waits (tests/harness/waits.py): the first truthy answer, a look that meets
a server not yet there counts as not yet, and a deadline that names what did not happen."""

from __future__ import annotations

import time

import httpx
import pytest
from harness.waits import until, until_now


async def test_until_gives_the_first_truthy_answer_of_a_look_sync_or_async() -> None:
    answers = iter([None, 0, "there"])
    assert await until("an answer", lambda: next(answers)) == "there"

    async def later() -> int:
        return 7

    assert await until("an awaited answer", later) == 7


async def test_a_server_not_yet_there_is_not_yet_and_the_deadline_names_what() -> None:
    looks = 0

    def refused() -> bool:
        nonlocal looks
        looks += 1
        raise httpx.ConnectError("connection refused")

    began = time.monotonic()
    with pytest.raises(AssertionError, match=r"the service answered within 0\.2 s \(last seen"):
        await until("the service answered", refused, 0.2, every=0.02)
    assert looks >= 3 and time.monotonic() - began < 2


def test_until_now_waits_in_this_thread() -> None:
    began = time.monotonic()
    assert until_now("a quarter second", lambda: time.monotonic() - began > 0.25, 5, 0.05)
    with pytest.raises(AssertionError, match=r"never within 0\.1 s"):
        until_now("never", lambda: False, 0.1, 0.02)
