"""The bearer tokens Kapok issues: ``kapok_<id>_<secret>``.

The id names the token in lists, logs and revocations; the secret is 32 random bytes, and
only its SHA-256 is ever stored. A slow password hash would buy nothing here: the secret is
not a guessable password but 256 random bits, and a fast hash keeps every request cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict, Field

from shared.auth.principal import SCOPED, Principal, Role

PREFIX = "kapok_"
_ID_BYTES = 9  # 12 characters of URL-safe base64, no '_' (the separator) in it: see new_id


class TokenRecord(BaseModel):
    """What the registry keeps of a token: never the token itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    hash: str = Field(description="SHA-256 of the secret, hex")
    role: Role
    station: str | None = None
    district: str | None = None
    actor: str = Field(description="written on every event the token records")
    note: str = ""
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def principal(self) -> Principal:
        return Principal(self.actor, self.role, self.station, self.district)

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.hash, digest(secret))

    def revoked(self, at: datetime) -> Self:
        return self.model_copy(update={"revoked_at": at})


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_id() -> str:
    while "_" in (token_id := secrets.token_urlsafe(_ID_BYTES)) or token_id.startswith("-"):
        pass
    return token_id


def issue(
    role: Role,
    *,
    station: str | None = None,
    district: str | None = None,
    actor: str | None = None,
    note: str = "",
    expires_at: datetime | None = None,
    token: str | None = None,
) -> tuple[str, TokenRecord]:
    """A new token and its record; ``token``: register this one (a secret made elsewhere,
    e.g. by a deployment's secret store) instead of making one."""
    if token is not None:
        token_id, secret = split(token) or (None, None)
        if token_id is None or secret is None:
            raise ValueError(f"not a Kapok token: it must look like {PREFIX}<id>_<secret>")
    else:
        token_id, secret = new_id(), secrets.token_urlsafe(32)
        token = f"{PREFIX}{token_id}_{secret}"
    needed = SCOPED.get(role)
    if needed == "station" and not station:
        raise ValueError("a station worker's token needs --station")
    if needed == "district" and not district:
        raise ValueError("a coordinator's token needs --district")
    if (needed != "station" and station) or (needed != "district" and district):
        raise ValueError(f"the {role} role has no {'station' if station else 'district'}")
    record = TokenRecord(
        id=token_id,
        hash=digest(secret),
        role=role,
        station=station,
        district=district,
        actor=actor or f"user:{token_id}",
        note=note,
        created_at=datetime.now(UTC),
        expires_at=expires_at,
    )
    record.principal()  # its scope checked once more, by the rule every request meets
    return token, record


def split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    if not token.startswith(PREFIX):
        return None
    token_id, sep, secret = token[len(PREFIX) :].partition("_")
    if not sep or not token_id or len(secret) < 16:
        return None
    return token_id, secret
