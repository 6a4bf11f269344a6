"""The fault stories start `kapok up` as the tests of tests/up do: one copy of its helpers
(``up_parts``), found beside them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "up"))
