"""Provision JetStream streams with Kapok's own code, idempotently, at every start-up.

Not FastStream's ``declare=True``: that rewrites an existing stream's config. Here an existing
stream is compared field by field; what may change is updated and named in the log, what may
not (storage) is refused with a message that says what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js import api
from nats.js.errors import NotFoundError

from shared.bus.naming import Naming
from shared.compat import natspy
from shared.settings import MIN_NATS_VERSION

log = logging.getLogger("kapok.provision")


class NatsTooOld(RuntimeError):
    pass


class StreamMisconfigured(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    replicas: int
    duplicate_window_s: float

    def config(self) -> api.StreamConfig:
        return api.StreamConfig(
            name=self.name,
            subjects=list(self.subjects),
            retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE,
            # The history is the audit record: no age, count or size limit, no deletes.
            max_age=0,
            max_msgs=-1,
            max_bytes=-1,
            discard=api.DiscardPolicy.OLD,
            num_replicas=self.replicas,
            duplicate_window=self.duplicate_window_s,
            deny_delete=True,
            deny_purge=True,
            allow_direct=True,
        )


def check_server_version(nc: NATS) -> None:
    version = nc.connected_server_version
    where = nc.connected_url.netloc if nc.connected_url else "?"
    require_version((version.major, version.minor, version.patch), where)
    info = natspy.server_info(nc)  # None: nats-py hides it; provisioning then finds out
    if info is not None and not info.get("jetstream"):
        raise NatsTooOld(f"the nats-server at {where} runs without JetStream: start it with -js")


def require_version(found: tuple[int, int, int], where: str) -> None:
    if found < MIN_NATS_VERSION:
        need = ".".join(map(str, MIN_NATS_VERSION))
        raise NatsTooOld(
            f"nats-server {'.'.join(map(str, found))} at {where} is older than {need}, which "
            f"Kapok needs (expected-sequence publishing, sync_interval). Use the embedded "
            f"server (`kapok nats`) or upgrade that one."
        )


def event_stream_specs(
    naming: Naming, sources: Iterable[str], replicas: int, duplicate_window_s: float
) -> list[StreamSpec]:
    specs = [
        StreamSpec(naming.stream(s), (naming.event_subjects(s),), replicas, duplicate_window_s)
        for s in sources
    ]
    specs.append(
        StreamSpec(
            naming.dead_letter_stream,
            (naming.dead_letter_subject("*"),),
            replicas,
            duplicate_window_s,
        )
    )
    return specs


async def ensure_streams(nc: NATS, specs: Iterable[StreamSpec], *, change: bool = True) -> None:
    """``change=False``: only check (an identity that may not create or update streams): a
    missing stream is refused by name, a different config is said and left as it is."""
    check_server_version(nc)
    js = nc.jetstream()
    for spec in specs:
        wanted = spec.config()
        try:
            info = await js.stream_info(spec.name)
        except NotFoundError:
            if not change:
                raise StreamMisconfigured(
                    f"stream {spec.name} does not exist, and this process's NATS identity "
                    f"may not create it: the administrator's does (`kapok up` provisions "
                    f"with it before starting the services)"
                ) from None
            await js.add_stream(wanted)
            log.info("stream %s created for %s", spec.name, ", ".join(spec.subjects))
            continue
        have = info.config
        if have.storage != wanted.storage:
            raise StreamMisconfigured(
                f"stream {spec.name} uses {have.storage} storage; Kapok needs file storage "
                f"(the audit record). Move its messages to a new file stream, or point "
                f"Kapok at another stream prefix (KAPOK_STREAM_PREFIX)."
            )
        changes = {
            field: (getattr(have, field), getattr(wanted, field))
            for field in (
                "subjects",
                "num_replicas",
                "duplicate_window",
                "max_age",
                "max_msgs",
                "max_bytes",
                "deny_delete",
                "deny_purge",
                "allow_direct",
            )
            if _differs(getattr(have, field), getattr(wanted, field))
        }
        if changes and not change:
            log.warning(
                "stream %s differs from Kapok's config (left as it is): %s", spec.name, changes
            )
        elif changes:
            await js.update_stream(wanted)
            log.warning("stream %s updated: %s", spec.name, changes)


def _differs(have: object, wanted: object) -> bool:
    if isinstance(have, list) and isinstance(wanted, list):
        return sorted(have) != sorted(wanted)
    if have in (None, 0, -1) and wanted in (None, 0, -1):
        return False
    if isinstance(have, float | int) and isinstance(wanted, float | int):
        return abs(float(have) - float(wanted)) > 1e-6
    return have != wanted
