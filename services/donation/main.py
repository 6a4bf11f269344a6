"""The donation process: HTTP API, NATS request-reply handlers, the outbox relay and the aid
delivery consumer, in one. `kapok serve donation` runs `serve`."""

from __future__ import annotations

from services.donation.application.commands import COMMANDS
from services.donation.application.service import SERVICE, donation_service
from services.donation.entrypoints.deliveries import delivery_runner
from services.donation.entrypoints.http import build_donation_app
from shared.bus.naming import Naming
from shared.service import process
from shared.settings import Settings

DEFAULT_PORT = 8003


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    service = donation_service(process.event_store(settings, SERVICE))
    await process.serve(
        settings,
        service,
        lambda gate: build_donation_app(service, gate),
        COMMANDS,
        host,
        port,
        # Made after provisioning, so the AID stream exists for its durable; its stats
        # are in the process's /api/health.
        consumers=[lambda nc: delivery_runner(nc, service.store, Naming.of(settings))],
    )
