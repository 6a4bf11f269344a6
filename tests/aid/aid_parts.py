"""The running parts of an aid service under test, and how a test talks to them: the
session's nats-server, a fresh database, the HTTP app in-process (httpx over ASGI) and the
NATS handlers on the server (see tests/harness/parts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from harness.parts import Running, run

from services.aid.application.commands import COMMANDS
from services.aid.application.service import aid_service
from services.aid.entrypoints.http import build_aid_app
from shared.settings import Settings


class Aid(Running):
    name = "aid"
    commands = COMMANDS


def start_aid(settings: Settings, database_url: str) -> AsyncIterator[Aid]:
    return run(
        Aid,
        settings,
        database_url,
        service=aid_service,
        app=build_aid_app,
        streams=["hotline", "aid"],
    )
