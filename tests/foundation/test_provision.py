"""Streams are provisioned by Kapok's own code: idempotent, checked, never silently rewritten."""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.js import api

from shared.bus.naming import Naming
from shared.bus.provision import (
    NatsTooOld,
    StreamMisconfigured,
    ensure_streams,
    event_stream_specs,
    require_version,
)
from shared.runtime import connect
from shared.settings import PRODUCERS, Settings


async def test_streams_are_created_once_as_the_audit_record_needs(
    settings: Settings, naming: Naming
) -> None:
    nc = await nats.connect(settings.nats_url)
    specs = event_stream_specs(naming, PRODUCERS, 1, 120)
    await ensure_streams(nc, specs)
    await ensure_streams(nc, specs)  # a second start-up changes nothing

    js = nc.jetstream()
    for source in PRODUCERS:
        config = (await js.stream_info(naming.stream(source))).config
        assert config.subjects == [f"{settings.subject_root}.{source}.*"]
        assert config.storage == api.StorageType.FILE
        assert config.max_age in (0, None) and config.max_msgs in (-1, None)
        assert config.deny_delete and config.deny_purge and config.duplicate_window == 120
    dead = (await js.stream_info(naming.dead_letter_stream)).config
    assert dead.subjects == [f"{settings.subject_root}.deadletter.*"]
    await nc.close()


async def test_an_existing_stream_with_other_subjects_is_updated_not_recreated(
    settings: Settings, naming: Naming
) -> None:
    nc = await nats.connect(settings.nats_url)
    js = nc.jetstream()
    await js.add_stream(
        name=naming.stream("aid"), subjects=[f"{settings.subject_root}.aid.old"], storage="file"
    )
    await js.publish(f"{settings.subject_root}.aid.old", b"kept")

    await ensure_streams(nc, event_stream_specs(naming, ["aid"], 1, 120))

    info = await js.stream_info(naming.stream("aid"))
    assert info.config.subjects == [f"{settings.subject_root}.aid.*"]
    assert info.state.messages == 1
    await nc.close()


async def test_a_memory_stream_is_refused_with_what_to_do(
    settings: Settings, naming: Naming
) -> None:
    nc = await nats.connect(settings.nats_url)
    await nc.jetstream().add_stream(
        name=naming.stream("donation"),
        subjects=[f"{settings.subject_root}.donation.*"],
        storage=api.StorageType.MEMORY,
    )

    with pytest.raises(StreamMisconfigured, match="needs file storage"):
        await ensure_streams(nc, event_stream_specs(naming, ["donation"], 1, 120))
    await nc.close()


def test_a_server_older_than_kapok_needs_is_refused_by_name() -> None:
    with pytest.raises(NatsTooOld, match=r"nats-server 2\.9\.25 at 127\.0\.0\.1:4222 is older"):
        require_version((2, 9, 25), "127.0.0.1:4222")
    require_version((2, 10, 0), "here")
    require_version((2, 15, 1), "here")


async def test_the_session_server_passes_the_check(settings: Settings, naming: Naming) -> None:
    nc = await nats.connect(settings.nats_url)
    await ensure_streams(nc, [])  # checks the version even with nothing to provision
    await nc.close()


async def test_a_connection_closed_on_purpose_does_not_warn_of_a_disconnection(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    nc = await connect(settings, "audit")
    await nc.close()
    await asyncio.sleep(0.05)  # nats-py runs the callbacks as the close ends
    assert "disconnected" not in caplog.text
