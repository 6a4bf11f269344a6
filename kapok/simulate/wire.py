"""A lean HTTP/1.1 client for the simulator: kept-alive connections to one service, JSON in
and out, nothing else.

httpx did the job but cost the simulator more CPU than building 300,000 items did: its pool
checks every connection each time it hands one out. The simulator shares two cores with the
services it measures, so it keeps to what it needs: POST and GET, Content-Length bodies (what
uvicorn sends), one request per connection at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class TransportError(ConnectionError):
    """The service could not be reached, or hung up mid-answer: the request may be retried
    (the simulator's requests carry an Idempotency-Key)."""


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


@dataclass
class Pool:
    """Up to ``size`` kept-alive connections to the service at ``base`` (http://host:port)."""

    base: str
    size: int
    timeout: float = 120.0
    _idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = field(default_factory=list)
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._slots = asyncio.Semaphore(self.size)

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Answer:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        lines.append(f"Content-Length: {len(body)}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        async with self._slots:
            try:
                reader, writer = self._idle.pop() if self._idle else await self._connect()
            except OSError as error:
                raise TransportError(f"{self.base}: {error}") from error
            try:
                async with asyncio.timeout(self.timeout):
                    writer.write(message)
                    answer, keep = await _read_answer(reader)
            except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as error:
                writer.close()
                raise TransportError(f"{method} {self.base}{path}: {error!r}") from error
            if keep:
                self._idle.append((reader, writer))
            else:
                writer.close()
            return answer

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(self.host, self.port, limit=2**20)

    async def close(self) -> None:
        while self._idle:
            _, writer = self._idle.pop()
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[Answer, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length: int | None = None
    keep = True
    for line in header_lines:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"connection" and value.strip().lower() == b"close":
            keep = False
        elif name == b"transfer-encoding":
            raise ValueError("chunked answers are not expected from Kapok's services")
    if length is None:  # no length: the body runs to the end of the connection
        return Answer(status, await reader.read()), False
    return Answer(status, await reader.readexactly(length)), keep
