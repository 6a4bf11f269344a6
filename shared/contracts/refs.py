"""References to people are issued by Kapok, never typed in: ``person:`` and 20 characters of
lower-case base32, the last 4 a check on the first 16. A name or a phone number cannot be one
(base32 has no 0, 1, 8 or 9, and a typed word fails the check), so a trial's caller
`name:Wang.Xiaoming.13800138000` is refused by every command that names a person.

Events keep the plain `Ref`: history recorded before the rule still reads.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
from typing import Annotated

from pydantic import AfterValidator, Field

_BODY = 16
_CHECK = 4


def _b32(data: bytes) -> str:
    return base64.b32encode(data).decode().lower().rstrip("=")


def _check(body: str) -> str:
    return _b32(hashlib.sha256(b"kapok person " + body.encode()).digest())[:_CHECK]


def person_ref(seed: str | bytes | None = None) -> str:
    """A new person's reference: random, or derived from ``seed`` (the same seed, the same
    reference: the scenario replays deterministically)."""
    if seed is None:
        raw = secrets.token_bytes(10)
    else:
        raw = hashlib.sha256(seed.encode() if isinstance(seed, str) else seed).digest()[:10]
    body = _b32(raw)[:_BODY]
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
