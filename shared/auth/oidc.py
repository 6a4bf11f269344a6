"""Sign-in with an association's own OpenID Connect provider: its ID or access tokens (JWTs)
checked against its published keys (JWKS), their claims mapped to a Kapok role and scope.

The key set is read at start and again every `REFRESH_S` (a provider rotates keys by
publishing the new one before it signs with it), from a file or an HTTPS URL; a request never
waits on the network. Settings: ``KAPOK_OIDC_*`` (`shared.settings`, README "Signing in").
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from shared.auth.principal import Principal, Role
from shared.auth.registry import Unauthorized

log = logging.getLogger("kapok.auth.oidc")
REFRESH_S = 600.0
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]
_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,59}$")


@dataclass(frozen=True, slots=True)
class OidcSettings:
    issuer: str
    audience: str
    jwks: str  # a file path or an https:// URL
    role_claim: str = "kapok_role"
    station_claim: str = "kapok_station"
    district_claim: str = "kapok_district"
    # The provider's group or role names, as Kapok's roles: {"sw-haizhu": "station-worker"}.
    roles: tuple[tuple[str, str], ...] = ()


class OidcVerifier:
    def __init__(self, settings: OidcSettings) -> None:
        self.settings = settings
        self.keys: dict[str, Any] = {}  # kid -> key
        self.roles = dict(settings.roles)

    def load(self) -> None:
        """Read the key set (blocking: at start, and from `follow` in a thread)."""
        source = self.settings.jwks
        if source.startswith(("https://", "http://")):
            with urllib.request.urlopen(source, timeout=10) as answer:
                document = json.load(answer)
        else:
            document = json.loads(Path(source).read_text())
        keys = jwt.PyJWKSet.from_dict(document).keys
        self.keys = {key.key_id or "": key for key in keys}

    async def follow(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            try:
                await asyncio.to_thread(self.load)
            except Exception as error:
                log.warning("OIDC key set not refreshed from %s: %s", self.settings.jwks, error)

    def principal(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
            key = self.keys.get(header.get("kid") or "")
            if key is None:
                raise Unauthorized("the provider's token is signed with a key Kapok does not know")
            claims = jwt.decode(
                token,
                key=key,
                algorithms=ALGORITHMS,
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(f"the provider's token is not valid: {error}") from None
        return self._principal(claims)

    def _principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        given = claims.get(s.role_claim)
        names = given if isinstance(given, list) else [given]
        roles = [self.roles.get(n, n) for n in names if isinstance(n, str)]
        known = [r for r in roles if r in Role.__members__.values()]
        if not known:
            raise Unauthorized(f"the provider's token names no Kapok role in {s.role_claim!r}")
        try:
            return Principal(
                actor=f"user:{_subject(str(claims['sub']))}",
                role=Role(known[0]),
                station=claims.get(s.station_claim) if known[0] == Role.STATION_WORKER else None,
                district=claims.get(s.district_claim) if known[0] == Role.COORDINATOR else None,
            )
        except ValueError as error:
            raise Unauthorized(f"the provider's token: {error}") from None


def _subject(sub: str) -> str:
    """The subject as Kapok's actors spell it; hashed when it could be an e-mail address or
    other personal text (events never carry it: README "Personal data")."""
    if _SAFE.match(sub) and "@" not in sub:
        return sub
    return "oidc-" + hashlib.sha256(sub.encode()).hexdigest()[:40]
