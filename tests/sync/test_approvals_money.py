"""The money of approved changes and additions (issue 11 §5 with §1, §4): an approved new addition
is billed at the catalog item's price (it is created without a unitPrice), and what the run created
or wrote counts in what it recovered."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing_sync import store
from tests.sync.test_approvals_run import (  # noqa: F401 (the fixtures)
    MISSING,
    approve_creation,
    ledger,
    run,
    sb,
)


def test_an_approved_addition_carries_its_money(sb: Any, eng: Any) -> None:  # noqa: F811
    run(eng, "r1")
    approve_creation(eng)
    run(eng, "r2")
    row = ledger(eng, "r2")[MISSING]
    assert row["action"] == "created"
    assert (row["unit_price"], row["monthly_amount_delta"]) == (Decimal("4.5"), Decimal("54"))  # 4.5 × 12
    money = store.get_run(eng, "r2", tenant="default")["checks"]["money"]
    assert Decimal(money["products"]["edr"]["recovered"]) == Decimal("54")
