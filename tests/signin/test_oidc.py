"""An association's own OpenID Connect provider: its JWTs checked against its key set (a
file here: generated in the test, no network), their claims mapped to a role and scope."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.auth.gate import Gate
from shared.auth.oidc import OidcSettings, OidcVerifier
from shared.auth.principal import Role
from shared.auth.registry import TokenRegistry, Unauthorized

ISSUER = "https://sso.gz-social-work.example"


def key_pair(kid: str) -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    return private, {**public, "kid": kid, "use": "sig", "alg": "RS256"}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    """The provider's signing key, a stranger's, and the provider's published key set."""
    ours, jwk = key_pair("2026-12")
    stranger, _ = key_pair("2026-12")  # same kid, another key: a forgery
    jwks = tmp_path_factory.mktemp("oidc") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}))
    return ours, stranger, jwks


def gate_for(jwks: Path, **settings: Any) -> Gate:
    verifier = OidcVerifier(
        OidcSettings(issuer=ISSUER, audience="kapok", jwks=str(jwks), **settings)
    )
    verifier.load()
    return Gate(TokenRegistry(), verifier)


def token(key: Any, kid: str = "2026-12", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "kapok", "sub": "u-4711", "iat": now, "exp": now + 300}
    return jwt.encode({**body, **claims}, key, algorithm="RS256", headers={"kid": kid})


def test_a_coordinator_signs_in_with_the_provider_s_token(provider: tuple[Any, Any, Path]) -> None:
    key, _, jwks = provider
    gate = gate_for(jwks)

    principal = gate.principal(
        "Bearer " + token(key, kapok_role="coordinator", kapok_district="haizhu")
    )

    assert principal is not None
    assert (principal.role, principal.district, principal.actor) == (
        Role.COORDINATOR,
        "haizhu",
        "user:u-4711",
    )


def test_the_provider_s_group_names_map_to_kapok_s_roles(provider: tuple[Any, Any, Path]) -> None:
    key, _, jwks = provider
    gate = gate_for(jwks, role_claim="groups", roles=(("sw-nanzhou", "station-worker"),))

    principal = gate.principal(
        "Bearer " + token(key, groups=["staff", "sw-nanzhou"], kapok_station="station:nanzhou")
    )

    assert principal is not None and principal.role is Role.STATION_WORKER
    assert principal.station == "station:nanzhou"


def test_an_e_mail_subject_never_becomes_an_actor_on_the_bus(
    provider: tuple[Any, Any, Path],
) -> None:
    key, _, jwks = provider
    principal = gate_for(jwks).principal(
        "Bearer " + token(key, sub="wang.xiaoming@example.com", kapok_role="auditor")
    )
    assert principal is not None and "wang" not in principal.actor
    assert principal.actor.startswith("user:oidc-")


@pytest.mark.parametrize(
    ("claims", "said"),
    [
        ({"iss": "https://elsewhere.example"}, "(?i)issuer"),
        ({"aud": "another-app"}, "(?i)audience"),
        ({"exp": int(time.time()) - 60}, "(?i)expired"),
        ({}, "no Kapok role"),
        ({"kapok_role": "coordinator"}, "district"),  # a coordinator of nowhere
        ({"kapok_role": "superuser"}, "no Kapok role"),
    ],
)
def test_what_the_gate_refuses(
    provider: tuple[Any, Any, Path], claims: dict[str, Any], said: str
) -> None:
    key, _, jwks = provider
    with pytest.raises(Unauthorized, match=said):
        gate_for(jwks).principal("Bearer " + token(key, **claims))


def test_a_token_signed_by_anyone_else_is_refused(provider: tuple[Any, Any, Path]) -> None:
    _, stranger, jwks = provider
    gate = gate_for(jwks)
    with pytest.raises(Unauthorized, match="not valid"):
        gate.principal("Bearer " + token(stranger, kapok_role="administrator"))
    with pytest.raises(Unauthorized, match="key Kapok does not know"):
        gate.principal("Bearer " + token(stranger, kid="other", kapok_role="administrator"))
    unsigned = jwt.encode({"iss": ISSUER, "kapok_role": "administrator"}, None, algorithm="none")
    with pytest.raises(Unauthorized):
        gate.principal("Bearer " + unsigned)
