"""The people process: HTTP API, the forget command over NATS, the outbox relay (PEOPLE), the
hotline and aid consumer that learns last contacts and assignments, and retention.
`kapok serve people` runs `serve`."""

from __future__ import annotations

from datetime import timedelta

from services.people.adapters.keyring import MasterKeys
from services.people.application.commands import COMMANDS
from services.people.application.service import SERVICE, people_service
from services.people.application.vault import Vault
from services.people.entrypoints.contacts import contacts_runner
from services.people.entrypoints.http import build_people_app
from services.people.entrypoints.retention import retention_task
from services.people.entrypoints.stream import ensure_people_stream
from services.people.settings import PeopleSettings
from shared.bus.naming import Naming
from shared.service import process
from shared.settings import Settings

DEFAULT_PORT = 8004


async def serve(settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    own = PeopleSettings()
    await ensure_people_stream(settings)
    vault = Vault(MasterKeys.open(own.keyring_path(settings)))
    service = people_service(process.event_store(settings, SERVICE), vault)
    await process.serve(
        settings,
        service,
        lambda gate: build_people_app(service, gate),
        COMMANDS,
        host,
        port,
        background=[retention_task(service, timedelta(days=own.retention_days), own.sweep_s)],
        consumers=[lambda nc: contacts_runner(nc, service.db, Naming.of(settings))],
    )
