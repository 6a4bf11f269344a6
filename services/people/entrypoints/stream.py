"""The PEOPLE stream: the people service's events (never details). Not one of
`shared.settings.PRODUCERS`: reporting counts nothing of it and the audit replays the figures'
streams only; the bus's identities (kapok/identities.py) and `kapok up`'s provisioning know
it."""

from __future__ import annotations

import nats

from shared.bus.naming import Naming
from shared.bus.provision import StreamSpec, ensure_streams, event_stream_specs
from shared.bus.servers import servers
from shared.runtime import connect_options
from shared.settings import Settings

PEOPLE = "people"


def people_stream_specs(settings: Settings) -> list[StreamSpec]:
    return event_stream_specs(
        Naming.of(settings), [PEOPLE], settings.stream_replicas, settings.duplicate_window_s
    )


async def ensure_people_stream(settings: Settings) -> None:
    """Made where this process may (a server without identities), else only checked: under
    `kapok up` the administrator made it (`kapok.identities.provision_as_admin`)."""
    nc = await nats.connect(
        servers(settings.nats_url),
        name="kapok-people-provision",
        **connect_options(settings, PEOPLE),
    )
    try:
        await ensure_streams(
            nc, people_stream_specs(settings), change=settings.nats_identity is None
        )
    finally:
        await nc.close()
