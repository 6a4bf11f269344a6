"""Tokens for in-process tests: a gate whose registry holds the tokens a test issues, as the
KV watch would have put them there (the watch itself is tested on real processes:
tests/signin)."""

from __future__ import annotations

from shared.auth.gate import Gate
from shared.auth.principal import Role
from shared.auth.registry import TokenRegistry
from shared.auth.tokens import issue
from shared.settings import Settings


def gate() -> Gate:
    registry = TokenRegistry()
    registry.ready.set()
    return Gate(registry)


def grant(gate: Gate, role: Role | str, **scope: str | None) -> str:
    """A new token of ``role`` (``station=…``, ``district=…``, ``actor=…``) the gate knows."""
    assert gate.registry is not None
    token, record = issue(Role(role), **scope)  # type: ignore[arg-type]
    gate.registry.records[record.id] = record
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def kv_grant(settings: Settings, role: Role | str, **scope: str | None) -> str:
    """A token registered as `kapok token create` does, in the token bucket on the settings'
    bus: for real processes, which learn of it through their watch."""
    from kapok.tokens import create

    token, _ = await create(settings, Role(role), **scope)  # type: ignore[arg-type]
    return token
