"""The people's details at rest: sealed per person, the data keys wrapped by the master key.

Every write happens in the command's transaction (a `Decision`'s guard), so an event and its
details commit together. Forgetting deletes the person's wrapped key and sealed details, then
rotates the master key: every other data key is re-wrapped with a new master key in the same
transaction, and once that has committed the old master key leaves the keyring file
(`settle`). A copy of the forgotten person's wrapped key anywhere else (a freed page of
SQLite, PostgreSQL's dead tuples and WAL, a backup of the database) is wrapped by a master key
that no longer exists.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from services.people.adapters import tables
from services.people.adapters.keyring import MasterKeys
from services.people.domain.sealing import (
    Details,
    new_data_key,
    open_details,
    seal_details,
    unwrap,
    wrap,
)
from shared.eventstore import Database

log = logging.getLogger("kapok.people.vault")


class Vault:
    def __init__(self, ring: MasterKeys) -> None:
        self.ring = ring
        # Rotations and the settling of the keyring file take turns (one process).
        self.lock = asyncio.Lock()

    def fingerprint(self, text: str) -> str:
        """A request's Idempotency-Key or fingerprint, keyed (HMAC-SHA256): a plain hash of a
        body holding a name and a phone would let a guess be confirmed from the keys table."""
        secret = hashlib.sha256(b"kapok people fingerprint\n" + self.ring.fingerprint).digest()
        return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()

    async def keep(self, conn: AsyncConnection, people: Sequence[tuple[str, Details]]) -> None:
        """New people's details, each under a new data key of their own."""
        async with self.lock:
            master = self.ring.current
            keys, boxes = [], []
            for person, details in people:
                data_key = new_data_key()
                wrapped = wrap(self.ring.keys[master], person, data_key)
                keys.append({"person": person, "master": master, "wrapped": wrapped})
                boxes.append({"person": person, "box": seal_details(data_key, person, details)})
            if keys:
                await conn.execute(tables.keys.insert(), keys)
                await conn.execute(tables.details.insert(), boxes)

    async def replace(self, conn: AsyncConnection, person: str, details: Details) -> None:
        """A kept person's details, changed, under their data key."""
        data_key = await self._data_key(conn, person)
        if data_key is None:
            raise LookupError(person)
        box = seal_details(data_key, person, details)
        await conn.execute(
            update(tables.details).where(tables.details.c.person == person).values(box=box)
        )

    async def read(self, conn: AsyncConnection, person: str) -> Details | None:
        """Their details, or None when none are kept (forgotten, or never recorded)."""
        data_key = await self._data_key(conn, person)
        if data_key is None:
            return None
        row = (
            await conn.execute(
                select(tables.details.c.box).where(tables.details.c.person == person)
            )
        ).first()
        return None if row is None else open_details(data_key, person, row[0])

    async def destroy(self, conn: AsyncConnection, people: Iterable[str]) -> None:
        """Their keys and details deleted, and every remaining data key re-wrapped by a new
        master key (written to the keyring beside the old one before anything is re-wrapped:
        a crash leaves every row readable)."""
        gone = sorted(set(people))
        async with self.lock:
            await conn.execute(delete(tables.keys).where(tables.keys.c.person.in_(gone)))
            await conn.execute(delete(tables.details).where(tables.details.c.person.in_(gone)))
            new = self.ring.add()
            self.ring.current = new
            self.ring.save()
            rows = (await conn.execute(select(tables.keys))).all()
            rewrapped = [
                {
                    "p": person,
                    "m": new,
                    "w": wrap(self.ring.keys[new], person, unwrap(self.ring.keys[old], person, w)),
                }
                for person, old, w in rows
                if old != new
            ]
            if rewrapped:
                statement = (
                    update(tables.keys)
                    .where(tables.keys.c.person == bindparam("p"))
                    .values(master=bindparam("m"), wrapped=bindparam("w"))
                )
                await conn.execute(statement, rewrapped)
            log.info(
                "forgot %d, re-wrapped %d data keys under a new master key", len(gone), len(rows)
            )

    async def settle(self, db: Database) -> None:
        """Once a rotation has committed (or failed): the keyring keeps only the master keys
        some row still uses, or the current one when none does. Run after every forget and
        at start (a crash between the commit and this leaves the old key one start longer)."""
        async with self.lock:
            async with db.read() as conn:
                used = {
                    row[0] for row in await conn.execute(select(tables.keys.c.master).distinct())
                }
            if len(used) > 1:
                log.warning(
                    "data keys under %d master keys: the next forget re-wraps them", len(used)
                )
                return
            keep = next(iter(used)) if used else self.ring.current
            if set(self.ring.keys) != {keep}:
                self.ring.keep_only(keep)

    async def _data_key(self, conn: AsyncConnection, person: str) -> bytes | None:
        row = (
            await conn.execute(
                select(tables.keys.c.master, tables.keys.c.wrapped).where(
                    tables.keys.c.person == person
                )
            )
        ).first()
        if row is None:
            return None
        return unwrap(self.ring.keys[row[0]], person, row[1])
