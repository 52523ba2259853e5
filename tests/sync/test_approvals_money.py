"""The money of approved changes and additions (issue 11 §5 with §1, §4): an approved new addition
is billed at the catalog item's price (it is created without a unitPrice), and what the run created
or wrote counts in what it recovered."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_sandbox.memory import MemorySources
from billing_sync import store
from tests.helpers.approvals_month import (
    HELD,
    MISSING,
    approve_change,
    approve_creation,
    ledger,
    run_in_memory,
    scenario,
)


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MemorySources:
    """The approvals month served in memory: these tests are about the run's data, not the wire."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    return MemorySources(scenario())


def test_an_approved_addition_carries_its_money(sb: Any, eng: Any) -> None:
    run_in_memory(sb, eng, "r1")
    approve_creation(eng)
    run_in_memory(sb, eng, "r2")
    row = ledger(eng, "r2")[MISSING]
    assert row["action"] == "created"
    assert (row["unit_price"], row["monthly_amount_delta"]) == (Decimal("4.5"), Decimal("54"))  # 4.5 × 12
    money = store.get_run(eng, "r2", tenant="default")["checks"]["money"]
    assert Decimal(money["products"]["edr"]["recovered"]) == Decimal("54")


def test_every_written_row_carries_its_monthly_amount(sb: Any, eng: Any) -> None:
    """Issue 20 §3: an approved change was written with `monthly_amount_delta` NULL, so the run's
    `recovered` left it out. A run with an approved change (40 → 5) and an approved new addition
    (12): every updated/created row has unit price × (new − previous) (previous 0 for a creation),
    and the run's money is their sum."""
    run_in_memory(sb, eng, "r1")
    change, creation = approve_change(eng), approve_creation(eng)
    run_in_memory(sb, eng, "r2")
    rows = ledger(eng, "r2")
    assert (rows[HELD]["action"], rows[HELD]["approval_id"]) == ("updated", change["id"])
    assert (rows[MISSING]["action"], rows[MISSING]["approval_id"]) == ("created", creation["id"])
    written = [r for r in rows.values() if r["action"] in ("updated", "created")]
    for r in written:
        assert r["unit_price"] is not None, r["sync_key"]  # every price is known in this scenario
        moved = Decimal(str(r["new_quantity"])) - Decimal(str(r["previous_quantity"] or 0))
        assert r["monthly_amount_delta"] == r["unit_price"] * moved, r
    assert rows[HELD]["monthly_amount_delta"] == Decimal("-157.5")  # 4.5 × (5 − 40)
    money = store.get_run(eng, "r2", tenant="default")["checks"]["money"]
    assert Decimal(money["recovered"]) == sum(r["monthly_amount_delta"] for r in written)
    assert Decimal(money["recovered"]) == Decimal("-103.5")  # −157.5 + 54


def test_the_ledger_row_is_never_written_without_its_amount_when_a_price_is_known(caplog: Any) -> None:
    """The guard (rows.ledger_row): a written or planned row whose price is known gets unit price ×
    (new − previous) when it arrives without one, and says so; without any price it stays NULL and
    is still recorded (a missing price never blocks a write)."""
    from billing_sync.rows import ledger_row

    change = {"sync_key": HELD, "unit_price": "6.5", "previous_quantity": 8.0, "new_quantity": 22}
    with caplog.at_level("WARNING", logger="billing_sync.rows"):
        row = ledger_row({**change, "outcome": "change", "monthly_amount_delta": None}, "updated")
    assert row["monthly_amount_delta"] == "91"  # issue 20: Sunrise EDR 8 → 22 at 6.5
    assert HELD in caplog.text and "without its monthly amount" in caplog.text
    created = {"sync_key": MISSING, "outcome": "create", "new_quantity": 12, "catalog_price": "4.5"}
    assert ledger_row(created, "created")["monthly_amount_delta"] == "54"  # previous 0
    assert ledger_row(created, "planned")["monthly_amount_delta"] == "54"
    unpriced = ledger_row({**created, "catalog_price": None}, "created")
    assert (unpriced["action"], unpriced["unit_price"], unpriced["monthly_amount_delta"]) == (
        "created",
        None,
        None,
    )
    given = ledger_row({**change, "outcome": "change", "monthly_amount_delta": "91"}, "updated")
    assert given["monthly_amount_delta"] == "91"
    assert ledger_row({**change, "outcome": "change"}, "failed")["monthly_amount_delta"] is None
