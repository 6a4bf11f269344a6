"""The running parts of a donation service under test: the session's nats-server, a fresh
database, the HTTP app in-process (httpx over ASGI) and the NATS handlers on the server (see
tests/harness/parts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from harness.parts import Running, run

from services.donation.application.commands import COMMANDS
from services.donation.application.service import donation_service
from services.donation.entrypoints.http import build_donation_app
from shared.settings import Settings


class Donation(Running):
    name = "donation"
    commands = COMMANDS

    async def launch(self, body: dict[str, Any]) -> str:
        response = await self.post("/campaigns", body)
        assert response.status_code == 201, response.text
        return str(response.json()["campaign"])

    async def stock(self, campaign: str) -> dict[tuple[str, str], str]:
        response = await self.http.get(f"/campaigns/{campaign}/stock")
        assert response.status_code == 200, response.text
        return {(s["kind"], s["unit"]): s["quantity"] for s in response.json()["stock"]}


def start_donation(settings: Settings, database_url: str) -> AsyncIterator[Donation]:
    return run(
        Donation,
        settings,
        database_url,
        service=donation_service,
        app=build_donation_app,
        streams=["aid", "donation"],
    )
