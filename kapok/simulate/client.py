"""The simulator's side of the services' HTTP APIs: an Idempotency-Key on every POST,
bounded retries, batches cut to the services' limit, and a bound on what is in flight."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from kapok.simulate.wire import Pool, TransportError

MAX_BATCH = 5000  # items in one batch request, the services' limit
# Requests in flight to one service (per lane, below): enough for its group commit to merge
# them into one transaction while the next ones are read and decided, few enough that none
# waits long behind the others.
IN_FLIGHT = 16


@dataclass
class Client:
    """The services' HTTP APIs, with idempotency keys, bounded retries and a bound on the
    requests in flight to each service."""

    urls: dict[str, str]
    key_prefix: str
    requests: int = 0
    pools: dict[str, Pool] = field(default_factory=dict)

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, urls: dict[str, str], key_prefix: str) -> AsyncIterator[Client]:
        client = cls(urls, key_prefix)
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
        }
        # Day logs and single commands queue apart: a referral waits on the service, not
        # behind every day's log sent ahead of it.
        pool = self._pool(service, "logs" if path.endswith(":batch") else "single")
        for attempt in range(8):
            try:
                answer = await pool.request("POST", path, content, headers)
            except TransportError:
                # A service restarting under `kapok up`: the same key makes the retry safe.
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            self.requests += 1
            if answer.status >= 500:
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            if answer.status >= 300:
                url = self.urls[service] + path
                raise RuntimeError(f"POST {url} → {answer.status}: {answer.text}")
            result: dict[str, Any] = orjson.loads(answer.body)
            return result
        raise RuntimeError(f"POST {self.urls[service]}{path}: no answer after 8 attempts")

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
            answer = await self._pool(service, "single").request("GET", path)
        except TransportError:
            return None
        return orjson.loads(answer.body) if answer.status == 200 else None  # type: ignore[no-any-return]
