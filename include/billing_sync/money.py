"""Money: exact amounts as `Decimal`, and how they read (two decimals).

Prices arrive from ConnectWise as JSON numbers and are staged as floats; `amount` turns one back into
the decimal it was written as (`repr` gives the shortest text that reads back as the same float, so
6.5 is Decimal("6.5") and 12.99 is Decimal("12.99"), never 12.9900000000000002131...). From there
every sum and product is Decimal arithmetic, so no float rounding reaches a stored amount. Frames carry
amounts as Decimal text (a "string" column): the staging tables keep them exactly, whatever the
database does with floats. Amounts are stored unrounded; `fmt` rounds half up to two decimals for
people.

The bottom of the package: imports nothing of ours.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal(0)


def amount(value: Any) -> Decimal | None:
    """`value` (Decimal, int, float, Decimal text) as a Decimal; None for missing, NA, NaN, infinite,
    booleans and text that is no number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(float(value))) if math.isfinite(value) else None  # float(): numpy floats too
    if isinstance(value, str):
        try:
            out = Decimal(value.strip())
        except InvalidOperation:
            return None
        return out if out.is_finite() else None
    if hasattr(value, "item"):  # numpy scalars
        return amount(value.item())
    return None  # pandas NA and anything else


def times(price: Any, units: Any) -> Decimal | None:
    """price × units, exactly; None when either is unknown. Whole units count as integers, so
    6.5 × 3.0 is 19.5 and not 19.50."""
    p, n = amount(price), amount(units)
    if p is None or n is None:
        return None
    if n == n.to_integral_value():
        n = Decimal(int(n))
    return p * n


def total(values: Iterable[Any]) -> Decimal:
    """The sum of the known amounts (unknown ones count as nothing)."""
    return sum((a for a in map(amount, values) if a is not None), ZERO)


def text(value: Any) -> str | None:
    """Decimal text for frames and JSON ("19.5", "-13"), None when unknown. Exact, not rounded."""
    a = amount(value)
    if a is None:
        return None
    return "0" if a == 0 else format(a.normalize(), "f")


def fmt(value: Any, missing: str = "") -> str:
    """For people: two decimals, thousands separated, the minus sign a real one ("−1,234.50")."""
    a = amount(value)
    if a is None:
        return missing
    rounded = a.quantize(CENT, rounding=ROUND_HALF_UP)
    if rounded == 0:
        rounded = abs(rounded)  # no "-0.00"
    return f"{rounded:,.2f}".replace("-", "−")


def signed(value: Any, missing: str = "") -> str:
    """`fmt` with the sign always shown ("+12.00", "−3.50", "0.00")."""
    a = amount(value)
    if a is None:
        return missing
    out = fmt(a)
    return out if out.startswith("−") or out == "0.00" else f"+{out}"
