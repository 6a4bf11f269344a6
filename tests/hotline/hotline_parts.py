"""The running parts of a hotline under test, and how a test talks to them: the session's
nats-server, a fresh database, the HTTP app in-process (httpx over ASGI) and the NATS
handlers on the server (see tests/harness/parts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from harness.parts import Running, run

from services.hotline.application.commands import COMMANDS
from services.hotline.application.service import hotline_service
from services.hotline.entrypoints.http import build_hotline_app
from shared.settings import Settings


class Hotline(Running):
    name = "hotline"
    commands = COMMANDS

    async def stream_count(self) -> int:
        await self.relay.publish_pending()
        info = await self.nc.jetstream().stream_info(self.naming.stream("hotline"))
        return int(info.state.messages)


def start_hotline(settings: Settings, database_url: str) -> AsyncIterator[Hotline]:
    return run(
        Hotline,
        settings,
        database_url,
        service=hotline_service,
        app=build_hotline_app,
        streams=["hotline"],
    )
