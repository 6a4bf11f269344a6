"""A nats-server configured as `kapok up` configures its own (Kapok's identities, nobody
anonymous), its streams provisioned by the administrator (bus_parts.py: how each identity
connects to it)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from bus_parts import SecuredBus

from kapok.identities import embedded_auth, provision_as_admin, signed_in_as
from shared.bus.auth import ADMIN, Keyring
from shared.bus.embedded import EmbeddedNats
from shared.bus.naming import Naming
from shared.settings import Settings

# `kapok up` is started as the tests of tests/up start it: one copy of its helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "up"))


@pytest_asyncio.fixture(scope="module")
async def secured(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[SecuredBus]:
    data_dir: Path = tmp_path_factory.mktemp("secured")
    naming = Naming()
    keyring = Keyring.of(data_dir)
    async with EmbeddedNats(data_dir, port=0, server_auth=embedded_auth(keyring, naming)) as srv:
        settings = Settings(nats_url=srv.url, data_dir=data_dir, stream_replicas=1)
        await provision_as_admin(signed_in_as(settings, keyring, ADMIN))
        yield SecuredBus(srv.url, keyring, naming, settings)
