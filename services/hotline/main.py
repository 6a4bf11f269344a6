"""The hotline process: HTTP API, NATS request-reply handlers and the outbox relay, in one.
`kapok serve hotline` runs `serve` (`shared.service.process`: start-up and shutdown order)."""

from __future__ import annotations

from services.hotline.application.commands import COMMANDS
from services.hotline.application.service import SERVICE, hotline_service
from services.hotline.entrypoints.http import build_hotline_app
from shared.service import process
from shared.settings import Settings

DEFAULT_PORT = 8001


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    service = hotline_service(process.event_store(settings, SERVICE))
    await process.serve(
        settings, service, lambda gate: build_hotline_app(service, gate), COMMANDS, host, port
    )
