"""Envelope encryption of one person's details: pure computation, no I/O.

Each person has a data key of their own (AES-256-GCM). Their details are sealed with it, the
person's reference as associated data (a sealed box moved to another person's row does not
open); the data key is sealed in turn with a master key. Destroying the person's wrapped data
key makes every copy of their sealed details unreadable at once.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import orjson
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


@dataclass(frozen=True, slots=True)
class Details:
    """What the work needs to reach a person: never logged, never on the bus."""

    name: str
    phone: str
    address: str

    def __repr__(self) -> str:
        return "Details(…)"  # a traceback or a log line must not print them


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, box: bytes, aad: bytes) -> bytes:
    return AESGCM(key).decrypt(box[:NONCE_BYTES], box[NONCE_BYTES:], aad)


def seal_details(data_key: bytes, person: str, details: Details) -> bytes:
    plain = orjson.dumps({"name": details.name, "phone": details.phone, "address": details.address})
    return _seal(data_key, plain, b"details\n" + person.encode())


def open_details(data_key: bytes, person: str, box: bytes) -> Details:
    plain = orjson.loads(_open(data_key, box, b"details\n" + person.encode()))
    return Details(plain["name"], plain["phone"], plain["address"])


def wrap(master: bytes, person: str, data_key: bytes) -> bytes:
    return _seal(master, data_key, b"key\n" + person.encode())


def unwrap(master: bytes, person: str, wrapped: bytes) -> bytes:
    return _open(master, wrapped, b"key\n" + person.encode())
