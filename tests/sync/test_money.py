"""billing_sync.money: exact amounts and how they read."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from billing_sync import money


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (6.5, Decimal("6.5")),
        (12.99, Decimal("12.99")),  # the price as written, not the float's binary expansion
        (0.1, Decimal("0.1")),
        (7, Decimal(7)),
        ("4.75", Decimal("4.75")),
        (Decimal("1.10"), Decimal("1.10")),
        (np.float64(2.5), Decimal("2.5")),
        (None, None),
        (pd.NA, None),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("abc", None),
    ],
)
def test_amount(value: object, expected: Decimal | None) -> None:
    assert money.amount(value) == expected


def test_times_and_total_are_exact() -> None:
    assert money.times(0.1, 3) == Decimal("0.3")
    assert money.times(6.5, 3.0) == Decimal("19.5")
    assert money.times(12.99, -7) == Decimal("-90.93")
    assert money.times(None, 3) is None and money.times(1, pd.NA) is None
    assert money.total(["0.1", "0.2", None, Decimal("0.3")]) == Decimal("0.6")


def test_text_and_fmt() -> None:
    assert money.text(Decimal("13.0")) == "13" and money.text(Decimal("100")) == "100"
    assert money.text(Decimal("4.7500000000")) == "4.75" and money.text(Decimal("-0")) == "0"
    assert money.text(None) is None
    assert money.fmt(Decimal("1234.5")) == "1,234.50"
    assert money.fmt("-0.004") == "0.00"
    assert money.fmt(Decimal("2.675")) == "2.68"  # half up, on the decimal (the float 2.675 rounds down)
    assert money.fmt(-3.5) == "−3.50" and money.fmt(None, "—") == "—"
    assert money.signed(12) == "+12.00" and money.signed(-1) == "−1.00" and money.signed(0) == "0.00"
