"""The simulator's HTTP client against a real socket server: kept-alive connections reused,
the ways an answer can end, a refused connection as a retryable TransportError, and 503s
sent again with the same Idempotency-Key for as long as the retries may take."""

from __future__ import annotations

import asyncio
import time

import pytest
from harness.waits import free_port

from kapok.simulate.client import Client
from kapok.simulate.wire import Pool, TransportError

pytestmark = pytest.mark.asyncio(loop_scope="session")


class Server:
    """Answers every request with ``answer``; counts connections and requests."""

    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []

    def answer_now(self) -> bytes:
        return self.answer

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                writer.write(self.answer_now())
                await writer.drain()
                if (
                    b"connection: close" in self.answer.lower()
                    or b"content-length" not in self.answer.lower()
                ):
                    break
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()


async def serving(answer: bytes) -> tuple[Server, asyncio.Server, str]:
    server = Server(answer)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    return server, listening, f"http://127.0.0.1:{port}"


async def test_a_pool_keeps_its_connection_alive_between_requests() -> None:
    server, listening, base = await serving(
        b'HTTP/1.1 201 Created\r\ncontent-length: 11\r\n\r\n{"ok":true}'
    )
    async with listening:
        pool = Pool(base, size=2)
        for n in range(3):
            answer = await pool.request("POST", "/calls:batch", b'{"n":%d}' % n, {"X": "1"})
            assert (answer.status, answer.body) == (201, b'{"ok":true}')
        await pool.close()
    assert server.connections == 1 and len(server.requests) == 3
    assert server.requests[2].startswith(b"POST /calls:batch HTTP/1.1\r\n")
    assert server.requests[2].endswith(b'\r\n\r\n{"n":2}') and b"X: 1\r\n" in server.requests[2]


async def test_an_answer_ending_its_connection_is_read_whole_and_not_reused() -> None:
    for answer in (
        b"HTTP/1.1 409 Conflict\r\nConnection: close\r\nContent-Length: 4\r\n\r\nrule",
        b"HTTP/1.1 200 OK\r\n\r\nto the end",
    ):
        server, listening, base = await serving(answer)
        async with listening:
            pool = Pool(base, size=1)
            first = await pool.request("GET", "/requests/r1")
            second = await pool.request("GET", "/requests/r1")
            await pool.close()
        assert first.body == second.body == answer.split(b"\r\n\r\n", 1)[1]
        assert server.connections == 2


async def test_nobody_listening_is_a_transport_error_to_retry() -> None:
    port = free_port()
    with pytest.raises(TransportError, match=str(port)):
        await Pool(f"http://127.0.0.1:{port}", size=1).request("GET", "/")


UNAVAILABLE = b'HTTP/1.1 503 Service Unavailable\r\ncontent-length: 14\r\n\r\n{"status":503}'
CREATED = b'HTTP/1.1 201 Created\r\ncontent-length: 11\r\n\r\n{"ok":true}'


class Recovering(Server):
    """503 for the first ``down`` requests, then 201."""

    def __init__(self, down: int) -> None:
        super().__init__(UNAVAILABLE)
        self.down = down

    def answer_now(self) -> bytes:
        return UNAVAILABLE if len(self.requests) <= self.down else CREATED


def keys(server: Server) -> list[bytes]:
    return [r.split(b"Idempotency-Key: ")[1].split(b"\r\n")[0] for r in server.requests]


async def test_a_503_is_sent_again_with_the_same_key_until_it_is_done() -> None:
    server = Recovering(down=2)
    listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
    async with listening, Client.open({"hotline": base}, "t", retry_for=30) as client:
        assert await client.post("hotline", "/points", {"n": 1}) == {"ok": True}
    assert len(server.requests) == 3 and len(set(keys(server))) == 1
    assert client.retries == 2


async def test_retries_end_when_their_time_is_up_without_a_last_useless_sleep() -> None:
    server, listening, base = await serving(UNAVAILABLE)
    async with listening, Client.open({"hotline": base}, "t", retry_for=1.0) as client:
        began = time.monotonic()
        with pytest.raises(RuntimeError, match=r"not done after retrying for 1s .* 503"):
            await client.post("hotline", "/points", {"n": 1})
        took = time.monotonic() - began
    # Three tries, 0.25 and 0.5 s apart: the next wait (1 s) would end after the deadline.
    assert len(server.requests) == 3 and len(set(keys(server))) == 1
    assert took < 1.5, took  # a last sleep of 1 s would make it 1.75 s or more
