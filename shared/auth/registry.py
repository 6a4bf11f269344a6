"""Where every instance learns of the tokens: a NATS KV bucket, one key per token id, its
value the token's record (never the token). Each service watches it, so a revocation reaches
every instance the moment the bucket has it (milliseconds), and a token is checked against
memory, with no round trip per request. Only the administrator's bus identity may write it
(`kapok token`, README "Signing in")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

import nats.errors
from nats.aio.client import Client as NATS
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue
from pydantic import ValidationError

from shared.auth.principal import Principal
from shared.auth.tokens import TokenRecord, split
from shared.bus.naming import Naming

log = logging.getLogger("kapok.auth")


def principal_id(token: str) -> str:
    """The id of a well-formed token (its record's key)."""
    parts = split(token)
    assert parts is not None
    return parts[0]


class Unauthorized(Exception):
    """No valid credential (401): the message says which and why, never the token."""


def bucket_name(naming: Naming) -> str:
    return f"{naming.stream_prefix}KAPOK_TOKENS"


async def open_bucket(
    nc: NATS, naming: Naming, *, create: bool = True, replicas: int = 1
) -> KeyValue:
    js = nc.jetstream()
    try:
        return await js.key_value(bucket_name(naming))
    except BucketNotFoundError:
        if not create:
            raise
        # History 1: a record's last state is the truth (a revoked one stays, marked).
        # As many replicas as the streams (KAPOK_STREAM_REPLICAS): losing one node of a
        # cluster must not take sign-in away.
        return await js.create_key_value(bucket=bucket_name(naming), history=1, replicas=replicas)


class TokenRegistry:
    """The tokens as the bucket has them, kept current by a watch (`follow`)."""

    def __init__(self) -> None:
        self.records: dict[str, TokenRecord] = {}
        self.ready = asyncio.Event()  # the bucket's state read once whole
        self.watching = False  # the watch is running (health says so when not)
        # Tokens already proven, by their exact text: a request then costs a dict lookup
        # instead of a hash, a compare and a Principal (about 8 µs). Only valid tokens get
        # here, so its size is bounded by theirs; a change to a record drops its entries.
        self._proven: dict[str, tuple[TokenRecord, Principal]] = {}

    def principal(self, token: str, now: datetime | None = None) -> Principal:
        if (proven := self._proven.get(token)) is not None:
            record, principal = proven
            # Still the record as the bucket has it (a revocation replaces it), not expired.
            current = self.records.get(record.id) is record
            if current and (
                record.expires_at is None or (now or datetime.now(UTC)) < record.expires_at
            ):
                return principal
        principal = self._prove(token, now)
        self._proven[token] = (self.records[principal_id(token)], principal)
        return principal

    def _prove(self, token: str, now: datetime | None) -> Principal:
        parts = split(token)
        if parts is None:
            raise Unauthorized("not a Kapok token")
        record = self.records.get(parts[0])
        if record is None or not record.matches(parts[1]):
            raise Unauthorized("unknown token")
        if record.revoked_at is not None:
            raise Unauthorized(f"token {record.id} was revoked")
        if record.expires_at is not None and (now or datetime.now(UTC)) >= record.expires_at:
            raise Unauthorized(f"token {record.id} has expired")
        return record.principal()

    def apply(self, key: str, value: bytes | None) -> None:
        self._proven = {t: p for t, p in self._proven.items() if p[0].id != key}
        if value is None:
            self.records.pop(key, None)
            return
        try:
            self.records[key] = TokenRecord.model_validate_json(value)
        except ValidationError:
            # Only the administrator writes here; a record this code cannot read signs no one in.
            self.records.pop(key, None)
            log.error("token record %s is unreadable: ignored (no one signs in with it)", key)

    async def follow(self, kv: KeyValue) -> None:
        """Watch the bucket until cancelled. nats-py's ordered consumer re-creates itself
        after a reconnect, so the watch outlives a NATS outage (the records in memory still
        sign people in meanwhile, and health says the watch is away)."""
        while True:
            try:
                watcher = await kv.watchall()
            except (nats.errors.Error, OSError) as error:
                self.watching = False
                log.warning("token watch cannot start (%s): retrying", error)
                await asyncio.sleep(1.0)
                continue
            self.watching = True
            try:
                async for entry in watcher:
                    if entry is None:  # caught up with the bucket as it was
                        self.ready.set()
                        continue
                    deleted = entry.operation in (KV_DEL, KV_PURGE)
                    self.apply(entry.key, None if deleted else entry.value)
            except (nats.errors.Error, OSError) as error:
                log.warning("token watch interrupted (%s): restarting it", error)
            finally:
                self.watching = False
                with contextlib.suppress(Exception):
                    await watcher.stop()


# -- the administrator's side ----------------------------------------------------------------


async def put(kv: KeyValue, record: TokenRecord) -> None:
    await kv.put(record.id, record.model_dump_json().encode())


async def records(kv: KeyValue) -> list[TokenRecord]:
    found: list[TokenRecord] = []
    try:
        keys = await kv.keys()
    except nats.js.errors.NoKeysError:
        return found
    for key in keys:
        with contextlib.suppress(KeyNotFoundError):
            entry = await kv.get(key)
            if entry.value:
                found.append(TokenRecord.model_validate_json(entry.value))
    return sorted(found, key=lambda r: r.created_at)


async def revoke(kv: KeyValue, token_id: str) -> TokenRecord:
    try:
        entry = await kv.get(token_id)
    except KeyNotFoundError:
        raise LookupError(f"no token {token_id}") from None
    record = TokenRecord.model_validate_json(entry.value or b"")
    if record.revoked_at is None:
        record = record.revoked(datetime.now(UTC))
        await kv.update(token_id, record.model_dump_json().encode(), last=entry.revision)
    return record
