"""What a browser could be made to do, refused: a request naming a Host Kapok does not serve
(DNS rebinding: a page whose name resolves to 127.0.0.1 reaching a local service), and
cross-origin reads unless an origin is configured (CORS off by default).

A pure ASGI check, not Starlette's BaseHTTPMiddleware: one pass over the headers, a few
hundred nanoseconds a request, and the refusal in Kapok's error shape.
"""

from __future__ import annotations

import orjson
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.settings import Settings


class HostCheck:
    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed
        self.any = "*" in allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if _hostname(host) in self.allowed:
            await self.app(scope, receive, send)
            return
        body = orjson.dumps(
            {
                "status": 400,
                "error": f"this service does not answer to the host {host!r} (KAPOK_ALLOWED_HOSTS)",
                "field": "Host",
            }
        )
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _hostname(host: str) -> str:
    """The name of a Host header without its port: ``[::1]:8001`` -> ``::1``."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def guard(app: FastAPI, settings: Settings) -> None:
    """Add the host check, and CORS for the configured origins (none: no CORS headers, so a
    browser lets no other origin read an answer or send JSON)."""
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            max_age=600,
        )
    app.add_middleware(HostCheck, allowed=frozenset(settings.allowed_hosts))
