"""Retention: details are forgotten `retention_days` after the person's last contact, as the
service's own command (recorded as PersonForgotten, reason "retention")."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from services.people.adapters.contacts import due
from services.people.application.commands import ForgetPeople
from services.people.application.service import PeopleService
from shared.contracts.envelope import Context

log = logging.getLogger("kapok.people.retention")

ACTOR = "service:people"
BATCH = 500


async def sweep(service: PeopleService, retention: timedelta, now: datetime | None = None) -> int:
    """Forget everyone whose last contact is older than ``retention``: how many."""
    before = int(((now or datetime.now(UTC)) - retention).timestamp())
    forgotten = 0
    while True:
        async with service.db.read() as conn:
            people = await due(conn, before, BATCH)
        if not people:
            return forgotten
        # One rotation of the master key per batch, not per person.
        reply = await service.execute(ForgetPeople(people=people), Context(actor=ACTOR))
        if reply.status != 200:
            log.warning("retention could not forget %d people: %s", len(people), reply.body[:200])
            return forgotten
        forgotten += len(people)


def retention_task(
    service: PeopleService, retention: timedelta, every_s: float
) -> Callable[[Any], Coroutine[Any, Any, None]]:
    async def run(nc: Any) -> None:
        while True:
            await asyncio.sleep(every_s)
            if count := await sweep(service, retention):
                log.info("retention: forgot %d people's details", count)

    return run
