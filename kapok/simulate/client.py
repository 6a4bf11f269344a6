"""The simulator's side of the services' HTTP APIs: an Idempotency-Key on every POST,
retries for as long as an outage can last, batches cut to the services' limit, and a bound on
what is in flight."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from kapok.simulate.wire import Pool, TransportError
from shared.settings import Settings


def signed_in_headers() -> dict[str, str]:
    from kapok.tokens import admin_token

    token = admin_token(Settings())
    return {"Authorization": f"Bearer {token}"} if token else {}


MAX_BATCH = 5000  # items in one batch request, the services' limit
# Requests in flight to one service (per lane, below): enough for its group commit to merge
# them into one transaction while the next ones are read and decided, few enough that none
# waits long behind the others.
IN_FLIGHT = 16
# Answers that say "not now" (a proxy's or the service's): the request was not carried out,
# and the same Idempotency-Key makes sending it again safe whatever happened.
RETRYABLE = frozenset({502, 503, 504})
FIRST_DELAY_S = 0.25
MAX_DELAY_S = 5.0


@dataclass
class Client:
    """The services' HTTP APIs, with idempotency keys, retries for ``retry_for`` seconds
    and a bound on the requests in flight to each service."""

    urls: dict[str, str]
    key_prefix: str
    retry_for: float = field(default_factory=lambda: Settings().simulate_retry_s)
    requests: int = 0
    retries: int = 0
    pools: dict[str, Pool] = field(default_factory=dict)
    waiting: dict[str, float] = field(default_factory=dict)  # service -> since (loop time)
    # Signed in as the `kapok up`'s administrator (or KAPOK_TOKEN); none: sign-in is off.
    signed_in: dict[str, str] = field(default_factory=lambda: signed_in_headers())

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, urls: dict[str, str], key_prefix: str, retry_for: float | None = None
    ) -> AsyncIterator[Client]:
        """``retry_for``: seconds; None: ``KAPOK_SIMULATE_RETRY_S`` (default 120)."""
        client = cls(urls, key_prefix)
        if retry_for is not None:
            client.retry_for = retry_for
        try:
            yield client
        finally:
            await asyncio.gather(*(pool.close() for pool in client.pools.values()))

    def _pool(self, service: str, lane: str) -> Pool:
        key = f"{service} {lane}"
        if key not in self.pools:
            self.pools[key] = Pool(self.urls[service], IN_FLIGHT)
        return self.pools[key]

    async def post(self, service: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        content = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
        # From the request's content, not its order: districts' days run concurrently, so
        # the order varies between runs while every request's content does not.
        digest = hashlib.sha256(f"{service} {path} ".encode() + content)
        headers = {
            "Idempotency-Key": f"{self.key_prefix}-{digest.hexdigest()[:40]}",
            "Content-Type": "application/json",
            **self.signed_in,
        }
        # Day logs and single commands queue apart: a referral waits on the service, not
        # behind every day's log sent ahead of it.
        pool = self._pool(service, "logs" if path.endswith(":batch") else "single")
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.retry_for, FIRST_DELAY_S
        while True:
            try:
                answer = await pool.request("POST", path, content, headers)
            except TransportError as error:  # refused, reset, or timed out: not answered
                why = str(error)
            else:
                self.requests += 1
                if answer.status < 300:
                    if service in self.waiting:
                        took = loop.time() - self.waiting.pop(service)
                        say(f"{service} answers again after {took:.1f}s")
                    result: dict[str, Any] = orjson.loads(answer.body)
                    return result
                if answer.status not in RETRYABLE:
                    url = self.urls[service] + path
                    raise RuntimeError(f"POST {url} → {answer.status}: {answer.text}")
                why = f"{answer.status} {answer.text[:200]}"
            # No sleep after the last try: the time is up, say so now.
            if loop.time() + delay > deadline:
                raise RuntimeError(
                    f"POST {self.urls[service]}{path}: not done after retrying for "
                    f"{self.retry_for:g}s (--retry-for); the last answer: {why}"
                )
            if service not in self.waiting:  # once per outage, not per request
                self.waiting[service] = loop.time()
                say(f"{service} not answering ({why}); retrying for up to {self.retry_for:g}s")
            self.retries += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)

    async def post_items(
        self, service: str, path: str, items: list[dict[str, Any]], answer: str | None = None
    ) -> list[Any]:
        """A batch endpoint, in chunks of its limit; the ``answer`` lists, joined in order."""
        chunks = [items[k : k + MAX_BATCH] for k in range(0, len(items), MAX_BATCH)]
        bodies = await asyncio.gather(*(self.post(service, path, {"items": c}) for c in chunks))
        return [x for body in bodies for x in body[answer]] if answer else []

    async def get(self, service: str, path: str) -> dict[str, Any] | None:
        """``GET path``'s JSON if it answers 200, else None (not there yet, or the service
        restarting)."""
        try:
            answer = await self._pool(service, "single").request(
                "GET", path, headers=self.signed_in
            )
        except TransportError:
            return None
        return orjson.loads(answer.body) if answer.status == 200 else None  # type: ignore[no-any-return]


def say(line: str) -> None:
    # A line of its own beside the progress bar (which redraws itself with \r).
    sys.stderr.write(f"\nkapok simulate: {line}\n")
