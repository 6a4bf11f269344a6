"""The cluster stories run real `kapok serve` processes, two or more of a service on one
PostgreSQL database; they borrow the hotline stories' people and places (``hotline_stories``,
found beside them)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hotline"))
