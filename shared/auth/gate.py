"""What both transports ask of a request's credential: who it is, or 401.

``Authorization: Bearer <token>``: a Kapok token (``kapok_…``, `registry`) or, when the
association's provider is configured, its JWT (`oidc`). With sign-in off (``KAPOK_AUTH=0``,
`kapok up --no-auth`: local experiments only) every request is unrestricted and recorded as
``system``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.auth.oidc import OidcVerifier
from shared.auth.principal import Principal
from shared.auth.registry import TokenRegistry, Unauthorized
from shared.auth.tokens import PREFIX

AUTHORIZATION = "Authorization"
_BEARER = "bearer "


@dataclass(slots=True)
class Gate:
    registry: TokenRegistry | None = field(default_factory=TokenRegistry)
    oidc: OidcVerifier | None = None

    @property
    def open(self) -> bool:
        """Sign-in is off: no credential asked, none checked."""
        return self.registry is None and self.oidc is None

    def principal(self, authorization: str | None) -> Principal | None:
        """The signed-in principal, None when sign-in is off; `Unauthorized` otherwise."""
        if self.registry is None and self.oidc is None:
            return None
        if not authorization:
            raise Unauthorized("sign in: the Authorization header (Bearer <token>) is missing")
        if authorization[:7].lower() != _BEARER:
            raise Unauthorized("sign in with Authorization: Bearer <token>")
        token = authorization[7:].strip()
        if token.startswith(PREFIX) and self.registry is not None:
            return self.registry.principal(token)
        if self.oidc is not None and token.count(".") == 2:
            return self.oidc.principal(token)
        raise Unauthorized("not a token Kapok accepts")


OPEN = Gate(registry=None)
"""Sign-in off."""
