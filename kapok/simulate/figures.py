"""The article's figures (docs/domain.md) and their scaled targets.

`--scale` shrinks every figure to round-half-up(figure × scale): counts to the unit, money
to the fen. The scenario then records exactly those amounts, so reporting's figures as of
2020-03-07 must equal `targets(scale)` key for key.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

# Reporting's figure keys (services/reporting/domain/report.py CORE_FIGURES) → the article.
ARTICLE: dict[str, int | Decimal] = {
    "hotline_points_opened": 229,
    "hotline_shifts": 10_237,
    "services_given": 300_000,
    "tracked_services": 100_000,
    "aid_actions": 5_478,
    "aid_persons_served": 10_540,
    "donated_items": 14_901,
    "donated_value_yuan": Decimal("355994.00"),
    "funds_raised_yuan": Decimal("136210.00"),
    "volunteers_linked": 1_864,
}

# The named campaigns and self-help projects, with their outputs (not core figures).
WARM_LUNCHES = 15_000
WARM_FUND_YUAN = Decimal("1000000.00")
WARM_FUND_STATIONS = 201
MASKS_RAISED = 112_000
QINGYUAN_KG = Decimal(1300)
QINGYUAN_CHICKENS = 345
QINGYUAN_HOUSEHOLDS = 680
ANGEL_PACKS = 800
ANGEL_PACKS_YUAN = Decimal("30000.00")
DEVICES = 20
FARM_JIN = Decimal(2000)
FARM_INCOME_YUAN = Decimal("11000.00")
LOVE_FARM_PERSON_TIMES = 58


def scaled(figure: int | Decimal, scale: float | Decimal) -> int | Decimal:
    """round-half-up(figure × scale): an int stays a count, a Decimal is money (fen)."""
    product = Decimal(figure) * Decimal(str(scale))
    if isinstance(figure, int):
        return int(product.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return product.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def targets(scale: float | Decimal) -> dict[str, int | str]:
    """What reporting's ``figures`` must show as of 2020-03-07 (money as its "0.00" string)."""
    out: dict[str, int | str] = {}
    for key, figure in ARTICLE.items():
        value = scaled(figure, scale)
        out[key] = str(value) if isinstance(value, Decimal) else value
    return out
