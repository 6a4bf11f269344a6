"""References to people are issued by Kapok, never typed in: ``person:`` and 20 characters of
lower-case base32, the last 4 a check on the first 16. A name or a phone number cannot be one
(base32 has no 0, 1, 8 or 9, and a typed word fails the check), so a trial's caller
`name:Wang.Xiaoming.13800138000` is refused by every command that names a person.

Events keep the plain `Ref`: history recorded before the rule still reads.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import zlib
from typing import Annotated

from pydantic import AfterValidator, Field

_BODY = 16
_CHECK = 4


_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # 10 bits -> two characters


def _b32(data: bytes, length: int) -> str:
    """The first ``length`` (even) base32 characters of ``data``, two at a time by integer:
    `base64.b32encode` cost about 4 µs a call, and a scenario names 600,000 people."""
    bits = int.from_bytes(data, "big")
    shift = len(data) * 8
    return "".join(_PAIRS[(bits >> (shift - 10 * (i + 1))) & 1023] for i in range(length // 2))


def _check(body: str) -> str:
    # A check against typing, not forgery: 20 bits of a CRC (a C call, no hash object).
    return _PAIRS[(crc := zlib.crc32(body.encode())) & 1023] + _PAIRS[(crc >> 10) & 1023]


def person_ref(seed: str | bytes | None = None) -> str:
    """A new person's reference: random, or derived from ``seed`` (the same seed, the same
    reference: the scenario replays deterministically)."""
    if seed is None:
        raw = secrets.token_bytes(10)
    else:
        data = seed.encode() if isinstance(seed, str) else seed
        raw = hashlib.blake2b(data, digest_size=10).digest()
    body = _b32(raw, _BODY)
    return f"person:{body}{_check(body)}"


@functools.lru_cache(maxsize=1 << 16)  # a day's log names its people again and again
def issued(ref: str) -> bool:
    body = ref.removeprefix("person:")
    return (
        ref.startswith("person:")
        and len(body) == _BODY + _CHECK
        and body.isascii()
        and _check(body[:_BODY]) == body[_BODY:]
    )


def _must_be_issued(ref: str) -> str:
    if not issued(ref):
        raise ValueError(
            "must be a person reference Kapok issued (person: and 20 characters, e.g. from "
            "POST /people), never a name or a number"
        )
    return ref


PersonRef = Annotated[
    str,
    Field(
        pattern=r"^person:[a-z2-7]{20}$",
        strict=True,
        description="a person, by the reference Kapok issued (POST /people): opaque, random",
        examples=["person:" + "a" * 16 + _check("a" * 16)],
    ),
    AfterValidator(_must_be_issued),
]
"""A person in a command: a reference Kapok issued."""
