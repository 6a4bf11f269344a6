"""The signing keys on disk (`shared.contracts.signatures` signs and checks with them).

``<dir>/<source>.<key id>.key``: a source's private key (its 32-byte seed, base64), mode 0600,
read only by that source's service. ``<dir>/ring.json``: every source's verification keys
with the position each signs from, what consumers and the audit check signatures with:

    {"hotline": [{"key_id": "3f…", "public": "<base64>", "valid_from": 1}, …], …}

The directory (``KAPOK_SIGNING_DIR``, default ``<data-dir>/signing``) is 0700. `kapok up`
makes every producer's first key before it starts anything; a service started alone makes its
own if it has none. `rotate` adds a key that signs from the position after the source's head,
with the service stopped: older events keep verifying with the older key, and the older key
is refused for any later position.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from nacl.signing import SigningKey, VerifyKey

from shared.contracts.signatures import Ring, RingKey, Signer, key_id

log = logging.getLogger("kapok.signing")
RING = "ring.json"


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def _directory(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    directory.chmod(0o700)
    return directory


def read_ring(directory: Path) -> dict[str, list[dict[str, object]]]:
    path = directory / RING
    if not path.is_file():
        return {}
    entries: dict[str, list[dict[str, object]]] = json.loads(path.read_text())
    return entries


def _write_ring(directory: Path, entries: Mapping[str, Sequence[Mapping[str, object]]]) -> None:
    temporary = directory / f".{RING}.{os.getpid()}"
    temporary.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    temporary.replace(directory / RING)  # whole or not at all, for readers meanwhile


def add_key(directory: Path, source: str, valid_from: int) -> str:
    """A new key for ``source`` that signs from ``valid_from`` on; its id."""
    _directory(directory)
    key = SigningKey.generate()
    public = bytes(key.verify_key)
    kid = key_id(public)
    _private(directory / f"{source}.{kid}.key", base64.b64encode(bytes(key)))
    entries = read_ring(directory)
    mine = [e for e in entries.get(source, []) if int(str(e["valid_from"])) < valid_from]
    mine.append(
        {"key_id": kid, "public": base64.b64encode(public).decode(), "valid_from": valid_from}
    )
    entries[source] = mine
    _write_ring(directory, entries)
    log.info("signing: %s signs with key %s from position %d", source, kid, valid_from)
    return kid


def ensure_keys(directory: Path, sources: Sequence[str]) -> None:
    """A first key for each source that has none (`kapok up`, before it starts anything)."""
    entries = read_ring(directory)
    for source in sources:
        if not entries.get(source):
            add_key(directory, source, 1)


def signer(directory: Path, source: str) -> Signer:
    """``source``'s signing keys, a first one made if it has none."""
    ensure_keys(directory, [source])
    keys = []
    for entry in read_ring(directory)[source]:
        seed = (directory / f"{source}.{entry['key_id']}.key").read_bytes()
        keys.append((int(str(entry["valid_from"])), SigningKey(base64.b64decode(seed))))
    return Signer(source, tuple(sorted(keys, key=lambda k: k[0])))


def ring(directory: Path) -> Ring | None:
    """Every source's verification keys, read again whenever a signature names a key it does
    not know; None where no source has ever made a key here (nothing to check against)."""

    def load() -> dict[str, list[RingKey]]:
        return {
            source: [
                RingKey(
                    str(e["key_id"]),
                    VerifyKey(base64.b64decode(str(e["public"]))),
                    int(str(e["valid_from"])),
                )
                for e in keys
            ]
            for source, keys in read_ring(directory).items()
        }

    keys = load()
    return Ring(keys, reload=load) if keys else None


def rotate(directory: Path, source: str, head: int) -> str:
    """A new key for ``source`` from the position after ``head`` (its store's last, read with
    the service stopped)."""
    return add_key(directory, source, head + 1)
