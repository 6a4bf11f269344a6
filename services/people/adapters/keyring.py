"""The master keys that wrap every person's data key, in one file (0600).

The file holds a small JSON keyring: the current master key and, only while a rotation is
under way, the one it replaces. A rotation (`services.people.application.vault`) writes the
new key beside the old, re-wraps every data key in one transaction, then writes the file
again with the new key alone: a wrapped key left anywhere (a freed database page, a WAL, a
backup) under the old master key can never be unwrapped again.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import orjson

KEY_BYTES = 32  # AES-256
log = logging.getLogger("kapok.people.keyring")


@dataclass
class MasterKeys:
    path: Path
    current: str
    keys: dict[str, bytes] = field(default_factory=dict)
    # Keys the Idempotency-Key fingerprints of requests holding details (never rotated: a
    # retried request must match its first after a forget).
    fingerprint: bytes = b""

    @classmethod
    def open(cls, path: Path) -> MasterKeys:
        """The keyring at ``path``, made (0600, its directory 0700) with a first key if it
        does not exist."""
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            ring = cls(path, "", {}, secrets.token_bytes(KEY_BYTES))
            ring.current = ring.add()
            ring.save()
            return ring
        if path.stat().st_mode & 0o077:
            # Readable by others: whoever reads it and a backup of the database reads people.
            log.warning("%s is readable by other users than its owner: chmod 600 it", path)
        data = orjson.loads(path.read_bytes())
        keys = {k: base64.b64decode(v) for k, v in data["keys"].items()}
        if data["current"] not in keys or any(len(k) != KEY_BYTES for k in keys.values()):
            raise ValueError(f"{path}: not a Kapok people keyring")
        return cls(path, data["current"], keys, base64.b64decode(data["fingerprint"]))

    def add(self) -> str:
        """A new master key in the ring (not yet current, not yet saved): its id."""
        key_id = secrets.token_hex(8)
        self.keys[key_id] = secrets.token_bytes(KEY_BYTES)
        return key_id

    def keep_only(self, key_id: str) -> None:
        """``key_id`` becomes current and every other key leaves the ring (saved)."""
        self.current = key_id
        self.keys = {key_id: self.keys[key_id]}
        self.save()

    def save(self) -> None:
        """Written to a temporary file (0600), flushed, then renamed over the ring: a crash
        leaves the old ring or the new, never half of one."""
        body = orjson.dumps(
            {
                "current": self.current,
                "keys": {k: base64.b64encode(v).decode() for k, v in self.keys.items()},
                "fingerprint": base64.b64encode(self.fingerprint).decode(),
            }
        )
        temporary = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
