"""The aid process: HTTP API, NATS request-reply handlers, the outbox relay and the hotline
referral consumer, in one. `kapok serve aid` runs `serve`."""

from __future__ import annotations

from services.aid.application.commands import COMMANDS
from services.aid.application.service import SERVICE, aid_service
from services.aid.entrypoints.http import build_aid_app
from services.aid.entrypoints.referrals import referral_runner
from shared.bus.naming import Naming
from shared.service import process
from shared.settings import Settings

DEFAULT_PORT = 8002


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    service = aid_service(process.event_store(settings, SERVICE))
    await process.serve(
        settings,
        service,
        lambda gate: build_aid_app(service, gate),
        COMMANDS,
        host,
        port,
        # Made after provisioning, so the HOTLINE stream exists for its durable; its stats
        # are in the process's /api/health.
        consumers=[lambda nc: referral_runner(nc, service.store, Naming.of(settings))],
    )
