"""Who may do what on the bus: NKey identities, their keys and their permissions.

Each process connects as one identity, proving it holds the identity's NKey seed by signing
the server's nonce (nats-py's ``nkeys_seed``); the server config lists the identities' public
keys, each with what it may publish and subscribe to, and takes no anonymous connection.
NKey users in the server config rather than operator/account JWTs: Kapok's identities are a
fixed handful known when the config is written, so the JWTs' one advantage (adding users
without touching the server) buys nothing here, while the config stays one readable file an
operator can check and copy, and no JWT encoder has to be written or trusted.

What each identity may do is spelled out here once (`Grant`), from the names of
`shared.bus.naming`; which service reads which stream and under which durable is the
composer's to say (`kapok/identities.py`).
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import nkeys

from shared.bus.naming import Naming

KEYS_DIR = "identities"  # under the data directory
SEED_SUFFIX = ".nk"
ADMIN = "admin"  # provisioning and repair: creates, updates and deletes streams
AUDITOR = "auditor"  # reads every stream, changes nothing
API = "$JS.API"


def inbox_prefix(identity: str) -> str:
    """Each identity's replies and deliveries come to inboxes of its own, which no other may
    subscribe to (nats-py's ``inbox_prefix``): nobody reads another's pulls or replies."""
    return f"_INBOX.{identity}"


# ---------------------------------------------------------------------------- keys


def new_seed() -> bytes:
    """A fresh NKey user seed (``SU…``)."""
    return bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))


def public_key(seed: bytes) -> str:
    """The public key (``U…``) the server config names for ``seed``."""
    pair = nkeys.from_seed(bytearray(seed.strip()))
    try:
        return bytes(pair.public_key).decode()
    finally:
        pair.wipe()


def sign(seed: bytes, nonce: bytes) -> tuple[str, str]:
    """The public key and the signature of ``nonce`` (base64url) that sign a connection in."""
    pair = nkeys.from_seed(bytearray(seed.strip()))
    try:
        signature = base64.urlsafe_b64encode(pair.sign(nonce)).rstrip(b"=").decode()
        return bytes(pair.public_key).decode(), signature
    finally:
        pair.wipe()


@dataclass(frozen=True, slots=True)
class Keyring:
    """The identities' seeds under ``<data_dir>/identities`` (0700), one file each (0600):
    made on first start, re-used after, never printed or logged."""

    directory: Path

    @classmethod
    def of(cls, data_dir: Path) -> Keyring:
        return cls(Path(data_dir).resolve() / KEYS_DIR)

    def seed_path(self, identity: str) -> Path:
        return self.directory / f"{identity}{SEED_SUFFIX}"

    def exists(self) -> bool:
        return self.directory.is_dir()

    def ensure(self, identities: Iterable[str]) -> dict[str, str]:
        """Make whatever seed is missing; each identity's public key."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        keys: dict[str, str] = {}
        for identity in identities:
            path = self.seed_path(identity)
            try:
                # O_EXCL: two `kapok up` starting at once never overwrite each other's seed.
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                path.chmod(0o600)
            else:
                with os.fdopen(fd, "wb") as f:
                    f.write(new_seed())
            keys[identity] = public_key(path.read_bytes())
        return keys


# ---------------------------------------------------------------------------- permissions


@dataclass(frozen=True, slots=True)
class Grant:
    """What one identity may do: subjects it may publish to (JetStream API calls are
    publishes too) and subscribe to; ``responds``: it may answer the requests it receives
    (nats-server's ``allow_responses``: one reply to each request's reply subject, whatever
    inbox the requester chose)."""

    identity: str
    publish: tuple[str, ...]
    subscribe: tuple[str, ...]
    deny_publish: tuple[str, ...] = ()
    responds: bool = False


@dataclass(frozen=True, slots=True)
class Reader:
    """A durable consumer an identity runs on a source's stream."""

    source: str
    durable: str


@dataclass(frozen=True, slots=True)
class Bus:
    """Kapok's bus as the permissions see it: the producers, who reads what, the KV bucket."""

    naming: Naming
    producers: tuple[str, ...]
    # identity -> the durables it runs; an identity here that is no producer only reads.
    readers: Mapping[str, tuple[Reader, ...]] = field(default_factory=dict)
    kv: Mapping[str, str] = field(default_factory=dict)  # identity -> its KV bucket
    watched_kv: tuple[str, ...] = ()  # buckets every service reads and watches (tokens)

    @property
    def streams(self) -> list[str]:
        n = self.naming
        return [n.stream(p) for p in self.producers] + [n.dead_letter_stream]

    def identities(self) -> list[str]:
        services = list(dict.fromkeys([*self.producers, *self.readers]))
        return [*services, ADMIN, AUDITOR]

    def grants(self) -> list[Grant]:
        return [self.grant(identity) for identity in self.identities()]

    def grant(self, identity: str) -> Grant:
        n = self.naming
        inbox = f"{inbox_prefix(identity)}.>"
        if identity == ADMIN:
            # Everything but answering or reading another's commands (subscribe: its inbox).
            return Grant(identity, (">",), (inbox,))
        checks = [f"{API}.INFO", *(f"{API}.STREAM.INFO.{s}" for s in self.streams)]
        if identity == AUDITOR:
            return self._auditor(checks, inbox)
        publish, subscribe = list(checks), [inbox]
        if identity in self.producers:
            publish += [n.event_subjects(identity), *_reads(n.stream(identity))]
            subscribe.append(n.command_subject(identity, ">"))
        for reader in self.readers.get(identity, ()):
            stream = n.stream(reader.source)
            publish += [*_reads(stream), *_durable(stream, reader.durable)]
            publish.append(n.dead_letter_subject(reader.durable))
        if bucket := self.kv.get(identity):
            stream = f"KV_{bucket}"
            publish += [f"$KV.{bucket}.>", f"{API}.STREAM.INFO.{stream}", *_reads(stream)]
        for watched in self.watched_kv:
            publish += _watches(f"KV_{watched}")
        return Grant(
            identity,
            tuple(dict.fromkeys(publish)),
            tuple(subscribe),
            responds=identity in self.producers,
        )

    def _auditor(self, checks: list[str], inbox: str) -> Grant:
        """Consumers of its own on every stream, named in the subject (an unnamed create,
        ``CONSUMER.CREATE.<stream>``, takes the name from its body, and so could rewrite a
        service's durable); never a service's durable."""
        publish, deny = list(checks), []
        for source in self.producers:
            stream = self.naming.stream(source)
            publish += _reads(stream)
            publish += [f"{API}.CONSUMER.CREATE.{stream}.*", f"{API}.CONSUMER.CREATE.{stream}.*.>"]
            publish += [f"{API}.CONSUMER.{op}.{stream}.*" for op in ("INFO", "MSG.NEXT", "DELETE")]
        for readers in self.readers.values():
            for reader in readers:
                deny += _durable(self.naming.stream(reader.source), reader.durable)
        return Grant(AUDITOR, tuple(publish), (inbox,), deny_publish=tuple(dict.fromkeys(deny)))


def _reads(stream: str) -> list[str]:
    """Reading a stream's messages by sequence (the relay checks its own so)."""
    return [
        f"{API}.STREAM.MSG.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}",
        f"{API}.DIRECT.GET.{stream}.>",
    ]


def _watches(stream: str) -> list[str]:
    """Reading a KV bucket and watching it: nats-py's watch is an ordered push consumer,
    ephemeral, re-made after a gap or a reconnect (its flow control answered on $JS.FC)."""
    consumer = f"{API}.CONSUMER"
    return [
        f"{API}.STREAM.INFO.{stream}",
        *_reads(stream),
        f"{consumer}.CREATE.{stream}",
        f"{consumer}.CREATE.{stream}.>",
        f"{consumer}.INFO.{stream}.*",
        f"{consumer}.DELETE.{stream}.*",
        f"$JS.FC.{stream}.>",
    ]


def _durable(stream: str, durable: str) -> list[str]:
    """Creating, checking, re-creating and pulling one's own durable, and acking it."""
    consumer = f"{API}.CONSUMER"
    return [
        f"{consumer}.CREATE.{stream}.{durable}",
        f"{consumer}.CREATE.{stream}.{durable}.>",
        f"{consumer}.DURABLE.CREATE.{stream}.{durable}",
        f"{consumer}.INFO.{stream}.{durable}",
        f"{consumer}.DELETE.{stream}.{durable}",
        f"{consumer}.MSG.NEXT.{stream}.{durable}",
        f"$JS.ACK.{stream}.{durable}.>",
    ]


# ---------------------------------------------------------------------------- server config


def users_config(grants: Iterable[Grant], keys: Mapping[str, str]) -> list[str]:
    """The ``users`` list of a nats-server config: each identity's key (as the config spells
    it: a quoted public key, or a ``$VARIABLE``) and what it may do."""
    lines = ["users: ["]
    for grant in grants:
        lines += [f"  # {grant.identity}", "  {", f"    nkey: {keys[grant.identity]}"]
        lines.append("    permissions: {")
        for direction, allow, deny in (
            ("publish", grant.publish, grant.deny_publish),
            ("subscribe", grant.subscribe, ()),
        ):
            lines.append(f"      {direction}: {{")
            lines += _subjects("allow", allow, "        ")
            if deny:
                lines += _subjects("deny", deny, "        ")
            lines.append("      }")
        if grant.responds:
            lines.append("      allow_responses: {max: 1}")
        lines += ["    }", "  }"]
    lines.append("]")
    return lines


def _subjects(name: str, subjects: Iterable[str], indent: str, width: int = 96) -> list[str]:
    lines, line = [f"{indent}{name}: ["], indent + "  "
    for quoted in (json.dumps(subject) + "," for subject in subjects):
        if len(line) + len(quoted) + 1 > width and line.strip():
            lines.append(line.rstrip())
            line = indent + "  "
        line += quoted + " "
    lines += [line.rstrip(), f"{indent}]"]
    return lines


def _indented(lines: list[str], indent: str) -> str:
    return "\n".join(indent + line if line else line for line in lines)


def authorization_block(grants: Iterable[Grant], public_keys: Mapping[str, str]) -> str:
    """The embedded server's: the identities in the server's global account (the one its
    JetStream store has always used, so a data directory from before keeps its streams).
    No ``no_auth_user``: a connection without a known key is refused."""
    keys = {identity: json.dumps(key) for identity, key in public_keys.items()}
    return f"authorization {{\n{_indented(users_config(grants, keys), '  ')}\n}}"


def key_variable(identity: str) -> str:
    """The environment variable an operator's config takes an identity's public key from."""
    return f"KAPOK_{identity.upper()}_NKEY"


def operator_config(bus: Bus, account: str = "KAPOK") -> str:
    """What an operator adds to their nats-server's config for Kapok (README, "The bus's
    identities"): an account of its own with JetStream, the identities' public keys taken from
    the environment (``KAPOK_HOTLINE_NKEY=U… nats-server -c …``)."""
    grants = bus.grants()
    keys = {grant.identity: f"${key_variable(grant.identity)}" for grant in grants}
    users = _indented(users_config(grants, keys), "    ")
    return f"accounts {{\n  {account} {{\n    jetstream: enabled\n{users}\n  }}\n}}"
