"""Kapok's bus as its permissions see it (`shared.bus.auth.Bus`): the producers, which durable
each service runs on which stream, reporting's KV bucket. Here because only the composer knows
every service's consumers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats

from services.aid.entrypoints.referrals import CONSUMER as AID_READS_HOTLINE
from services.donation.entrypoints.deliveries import CONSUMER as DONATION_READS_AID
from services.people.entrypoints.contacts import CONSUMER as PEOPLE_READS_HOTLINE_AID
from services.people.entrypoints.stream import PEOPLE, people_stream_specs
from services.reporting.adapters.kv import bucket_name, open_bucket
from services.reporting.adapters.tables import CONSUMER as REPORTING_READS_ALL
from shared.auth.registry import bucket_name as tokens_bucket_name
from shared.auth.registry import open_bucket as tokens_bucket
from shared.bus.auth import ADMIN, Bus, Keyring, Reader, authorization_block
from shared.bus.embedded import EmbeddedNats, ServerAuth
from shared.bus.naming import Naming
from shared.bus.provision import ensure_streams
from shared.bus.servers import servers
from shared.runtime import connect_options, provision
from shared.settings import PRODUCERS, Settings


def kapok_bus(naming: Naming) -> Bus:
    return Bus(
        naming,
        (*PRODUCERS, PEOPLE),
        readers={
            "aid": (Reader("hotline", AID_READS_HOTLINE),),
            "donation": (Reader("aid", DONATION_READS_AID),),
            PEOPLE: tuple(Reader(s, PEOPLE_READS_HOTLINE_AID) for s in ("hotline", "aid")),
            "reporting": tuple(Reader(source, REPORTING_READS_ALL) for source in PRODUCERS),
        },
        kv={"reporting": bucket_name(naming)},
        # Every service signs people in from the token bucket (shared/auth/registry.py).
        watched_kv=(tokens_bucket_name(naming),),
    )


def embedded_auth(keyring: Keyring, naming: Naming) -> ServerAuth:
    """The embedded server's identities: every key made if missing, the config's block, and
    the administrator for its readiness probe."""
    bus = kapok_bus(naming)
    keys = keyring.ensure(bus.identities())
    return ServerAuth(authorization_block(bus.grants(), keys), keyring.seed_path(ADMIN), ADMIN)


def signed_in_as(settings: Settings, keyring: Keyring, identity: str) -> Settings:
    return settings.model_copy(
        update={"nats_nkey_seed": keyring.seed_path(identity), "nats_creds": None}
    )


def sign_in_from(data_dir: Path, identity: str) -> None:
    """For a command run beside a `kapok up` (`kapok audit replay`, `kapok bus repair`): sign
    in as ``identity`` with its seed in the data directory, unless this process was given
    credentials of its own (``KAPOK_NATS_CREDS``, ``KAPOK_NATS_NKEY_SEED``)."""
    seed = Keyring.of(data_dir).seed_path(identity)
    given = {"KAPOK_NATS_CREDS", "KAPOK_NATS_NKEY_SEED"} & os.environ.keys()
    if not given and seed.is_file():
        os.environ["KAPOK_NATS_NKEY_SEED"] = str(seed)


async def provision_as_admin(settings: Settings) -> None:
    """Kapok's streams and reporting's KV bucket, made or brought up to date by the one
    identity allowed to (before the services start: they only check)."""
    nc = await nats.connect(
        servers(settings.nats_url),
        name="kapok-provision",
        allow_reconnect=False,
        connect_timeout=5,
        **connect_options(settings, ADMIN),
    )
    try:
        await provision(nc, settings, admin=True)
        await ensure_streams(nc, people_stream_specs(settings))
        await open_bucket(nc, Naming.of(settings), settings.stream_replicas)
        await tokens_bucket(nc, Naming.of(settings), replicas=settings.stream_replicas)
    finally:
        await nc.close()


def sign_in_options(data_dir: Path, identity: str) -> dict[str, Any]:
    """nats-py's connect options for ``identity`` of the `kapok up` on ``data_dir``, for a
    tool or a test reading its bus (an auditor's: `AUDITOR`)."""
    return connect_options(signed_in_as(Settings(), Keyring.of(data_dir), identity), identity)


def foreground_auth(
    data_dir: Path | None,
) -> tuple[ServerAuth, Callable[[EmbeddedNats], None]]:
    """`kapok nats`: the embedded server with Kapok's identities, as under `kapok up`, and the
    streams provisioned as the administrator once it answers (`kapok serve <service>` on the
    same data directory then signs in as the service)."""
    settings = Settings()
    keyring = Keyring.of(data_dir or settings.data_dir)

    def provision_streams(server: EmbeddedNats) -> None:
        on = settings.model_copy(update={"nats_url": server.url})
        asyncio.run(provision_as_admin(signed_in_as(on, keyring, ADMIN)))

    return embedded_auth(keyring, Naming.of(settings)), provision_streams
