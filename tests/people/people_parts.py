"""The running parts of a people service under test: the session's nats-server, a fresh
database, a keyring file in the test's directory, the HTTP app in-process (httpx over ASGI)
and its NATS handlers (see tests/harness/parts.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from harness.parts import Running, run

from services.people.adapters.keyring import MasterKeys
from services.people.application.commands import COMMANDS
from services.people.application.service import PeopleService
from services.people.application.vault import Vault
from services.people.entrypoints.http import build_people_app
from shared.eventstore import EventStore
from shared.settings import Settings

NANZHOU = {
    "district": "haizhu",
    "street": "南洲街",
    "station": "station:nanzhou",
    "organisation": "org:haizhu-sw",
}
RUIBAO = {**NANZHOU, "street": "瑞宝街", "station": "station:ruibao"}
# Distinctive enough that a byte search finds nothing else.
NAME, PHONE, ADDRESS = "卫秀珍测试", "13912345678", "南洲路88号2栋301"


def person_body(**fields: Any) -> dict[str, Any]:
    return {
        "place": NANZHOU,
        "full_name": NAME,
        "phone": PHONE,
        "address": ADDRESS,
        "recorded_at": "2020-02-01T10:00:00+08:00",
        **fields,
    }


class People(Running):
    name = "people"
    commands = COMMANDS
    service: PeopleService  # type: ignore[assignment]


def start_people(settings: Settings, database_url: str, keyring: Path) -> AsyncIterator[People]:
    def people_service(store: EventStore) -> PeopleService:
        return PeopleService(store, Vault(MasterKeys.open(keyring)))

    return run(
        People,
        settings,
        database_url,
        service=people_service,  # type: ignore[arg-type]
        app=build_people_app,  # type: ignore[arg-type]
        streams=["people"],
    )
