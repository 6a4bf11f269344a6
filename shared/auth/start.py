"""A process's gate, as its settings ask: the token registry following its bucket, and the
association's provider's keys where one is configured; or open, said loudly."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from nats.aio.client import Client as NATS

from shared.auth.gate import OPEN, Gate
from shared.auth.oidc import OidcSettings, OidcVerifier
from shared.auth.registry import TokenRegistry, open_bucket
from shared.bus.naming import Naming
from shared.settings import Settings

log = logging.getLogger("kapok.auth")
# How long a starting process waits to have read every token before it serves anyway (each
# request is then refused 401 until the watch has caught up; health says it is not ready).
CATCH_UP_S = 10.0

Following = tuple[str, Coroutine[Any, Any, None]]
"""A task to run beside the process, and its name's ending (health names it)."""


def oidc_settings(settings: Settings) -> OidcSettings | None:
    if not settings.oidc_issuer or not settings.oidc_jwks:
        return None
    roles = tuple(tuple(pair.split("=", 1)) for pair in settings.oidc_roles if "=" in pair)
    return OidcSettings(
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        jwks=settings.oidc_jwks,
        role_claim=settings.oidc_role_claim,
        station_claim=settings.oidc_station_claim,
        district_claim=settings.oidc_district_claim,
        roles=roles,  # type: ignore[arg-type]
    )


async def start_gate(settings: Settings, nc: NATS, name: str) -> tuple[Gate, list[Following]]:
    """The gate, and what must run beside the process to keep it current."""
    if not settings.auth:
        log.warning(
            "%s: SIGN-IN IS OFF (KAPOK_AUTH=0): anyone who reaches this service may record, "
            "correct and read everything, recorded as 'system'. For local experiments only.",
            name,
        )
        return OPEN, []
    registry = TokenRegistry()
    kv = await open_bucket(nc, Naming.of(settings), replicas=settings.stream_replicas)
    following: list[Following] = [("tokens", registry.follow(kv))]
    oidc = None
    if (configured := oidc_settings(settings)) is not None:
        oidc = OidcVerifier(configured)
        await asyncio.to_thread(oidc.load)
        following.append(("provider-keys", oidc.follow()))
    return Gate(registry, oidc), following


async def caught_up(gate: Gate) -> None:
    if gate.registry is None:
        return
    try:
        await asyncio.wait_for(gate.registry.ready.wait(), CATCH_UP_S)
    except TimeoutError:
        log.error("the token registry has not been read within %.0f s: serving anyway", CATCH_UP_S)
