"""What free text a person types may not hold: a phone number or an ID-card number. The
few free strings Kapok takes (a street's name, a campaign's title, a void's reason) are
checked where they come in, in commands; events keep the plain types, so history recorded
before the check still reads.

Digits are looked at with the spaces, dots and hyphens people write between them taken out
("138 0013 8000", "020-8888-1234"), and full-width digits folded to ASCII first.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# A mainland mobile (11 digits from 13–19, optionally +86), a landline with its area code
# (0 and 2–3 digits, then 7–8), an 18-character resident ID (17 digits and a digit or X) or
# the old 15-digit one: each as a run of digits standing alone.
_MOBILE = re.compile(r"(?<![0-9])(?:\+?86)?1[3-9][0-9]{9}(?![0-9])")
_LANDLINE = re.compile(r"(?<![0-9])0[1-9][0-9]{1,2}[0-9]{7,8}(?![0-9])")
_ID_CARD = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])")
_SEPARATORS = re.compile(r"(?<=[0-9])[\s.\-()（）]+(?=[0-9+])")


def personal_number(text: str) -> str | None:
    """What kind of personal number ``text`` holds, if any."""
    folded = _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))
    if _ID_CARD.search(folded):
        return "an ID-card number"
    if _MOBILE.search(folded):
        return "a phone number"
    if _LANDLINE.search(folded):
        return "a phone number"
    return None


def _refuse_personal_numbers(text: str) -> str:
    if (found := personal_number(text)) is not None:
        raise ValueError(
            f"must not hold {found}: contact details are kept by the people service, "
            "encrypted (README, 'Personal data')"
        )
    return text


NoPersonalNumbers = AfterValidator(_refuse_personal_numbers)
"""For a command's free text: refused (422, naming the field) when it holds a personal number."""

Checked = Annotated[str, NoPersonalNumbers]
