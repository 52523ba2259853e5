"""The store's money (ledger unit_price / monthly_amount_delta, quarantine amount_at_stake), the
queue by amount, the held totals, and overrides as reconcile reads them (docs/contract.md §4)."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from billing_sync import frames, store

DAY = "2026-11-01"


def held(key: str, reason: str, amount: str | None) -> dict:
    return {
        "sync_key": key,
        "reason_code": reason,
        "product": "edr",
        "detail": "d",
        "amount_at_stake": amount,
    }


def test_ledger_money_and_override_round_trip(engine: sa.Engine) -> None:
    store.record_changes(
        engine,
        "r1",
        DAY,
        [
            {
                "sync_key": "company:1:edr",
                "action": "updated",
                "previous_quantity": 38.0,
                "new_quantity": 41,
                "unit_price": "12.99",
                "monthly_amount_delta": "38.97",
                "override_id": 7,
            },
            {"sync_key": "company:2:edr", "action": "unchanged", "unit_price": Decimal("0.1")},
        ],
        tenant="default",
    )
    first, second = store.changes_for_run(engine, "r1", tenant="default")
    assert (first["unit_price"], first["monthly_amount_delta"], first["override_id"]) == (
        Decimal("12.99"),
        Decimal("38.97"),
        7,
    )
    assert (second["unit_price"], second["monthly_amount_delta"], second["override_id"]) == (
        Decimal("0.1"),
        None,
        None,
    )
    # A retried push records the row again: the money is updated with it.
    store.record_changes(
        engine,
        "r1",
        DAY,
        [{"sync_key": "company:2:edr", "action": "unchanged", "monthly_amount_delta": "0"}],
        tenant="default",
    )
    assert store.changes_for_run(engine, "r1", tenant="default")[1]["monthly_amount_delta"] == 0


@pytest.mark.parametrize("bad", [1.5, "lots"])
def test_ledger_refuses_amounts_that_are_no_exact_number(engine: sa.Engine, bad: object) -> None:
    with pytest.raises(ValueError, match="unit_price"):
        store.record_changes(
            engine, "r1", DAY, [{"sync_key": "k", "action": "updated", "unit_price": bad}], tenant="default"
        )


def test_quarantine_amount_round_trip_and_refresh(engine: sa.Engine) -> None:
    store.upsert_quarantine(
        engine, "r1", DAY, [held("company:1:edr", "change_exceeds_limit", "325.5")], tenant="default"
    )
    assert store.list_quarantine(engine, tenant="default")[0]["amount_at_stake"] == Decimal("325.5")
    store.upsert_quarantine(
        engine, "r2", DAY, [held("company:1:edr", "change_exceeds_limit", "12")], tenant="default"
    )
    [row] = store.list_quarantine(engine, tenant="default")
    assert (row["run_id"], row["amount_at_stake"]) == ("r2", Decimal("12"))
    store.upsert_quarantine(
        engine, "r3", DAY, [held("company:1:edr", "change_exceeds_limit", None)], tenant="default"
    )
    assert store.list_quarantine(engine, tenant="default")[0]["amount_at_stake"] is None


def test_the_queue_sorts_by_amount_at_stake(engine: sa.Engine) -> None:
    rows = [
        held("company:1:edr", "change_exceeds_limit", "10"),
        held("company:2:edr", "no_live_addition", None),
        held("company:3:edr", "no_live_addition", "1000.01"),
        held("company:4:edr", "missing_from_invoice", "99.99"),
    ]
    store.upsert_quarantine(engine, "r1", DAY, rows, tenant="default")
    by_amount = store.list_quarantine(engine, order="amount", tenant="default")
    assert [r["sync_key"] for r in by_amount] == [
        "company:3:edr",
        "company:4:edr",
        "company:1:edr",
        "company:2:edr",  # no amount: last
    ]
    assert [
        r["sync_key"]
        for r in store.list_quarantine(engine, order="amount", limit=1, offset=1, tenant="default")
    ] == ["company:4:edr"]
    with pytest.raises(ValueError, match="order must be one of"):
        store.list_quarantine(engine, order="price", tenant="default")


def test_held_totals_by_reason_are_exact(engine: sa.Engine) -> None:
    store.upsert_quarantine(
        engine,
        "r1",
        DAY,
        [
            held("company:1:edr", "no_live_addition", "0.1"),
            held("company:2:edr", "no_live_addition", "0.2"),
            held("company:3:edr", "no_live_addition", None),
            held("company:4:edr", "change_exceeds_limit", "5"),
            held("company:5:edr", "missing_from_invoice", "7"),
        ],
        tenant="default",
    )
    done = store.list_quarantine(engine, sync_key="company:5:edr", tenant="default")[0]
    store.set_quarantine_status(engine, done["id"], "dismissed", "Jane", "known", tenant="default")
    totals = store.held_totals(engine, run_id="r1", tenant="default")
    assert [r["reason_code"] for r in totals["reasons"]] == ["no_live_addition", "change_exceeds_limit"]
    no_live = totals["reasons"][0]
    assert (no_live["rows"], no_live["priced_rows"], no_live["amount"]) == (3, 2, Decimal("0.3"))
    assert (totals["rows"], totals["priced_rows"], totals["amount"]) == (4, 3, Decimal("5.3"))
    assert store.held_totals(engine, status="dismissed", tenant="default")["amount"] == Decimal("7")
    assert store.held_totals(engine, run_id="other", tenant="default") == {
        "reasons": [],
        "rows": 0,
        "priced_rows": 0,
        "amount": 0,
    }


def test_overrides_frame_holds_the_active_rules(engine: sa.Engine) -> None:
    keep = store.add_override(
        engine, cw_company_id=250, product="edr", rule="minimum", quantity=25, user="Jane", tenant="default"
    )
    gone = store.add_override(
        engine, cw_company_id=251, product="sat", rule="exclude", user="Bob", tenant="default"
    )
    store.retire_override(engine, gone["id"], tenant="default")
    store.add_override(
        engine, cw_company_id=250, product="edr", rule="fixed", quantity=3, user="X", tenant="north"
    )
    frame = store.overrides_frame(engine, tenant="default")
    assert list(frame.columns) == list(frames.SCHEMAS["overrides"])
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    assert records == [
        {
            "override_id": keep["id"],
            "company_id": 250,
            "product": "edr",
            "rule": "minimum",
            "quantity": 25.0,
            "created_by": "Jane",
            "note": None,
        }
    ]
    assert len(store.overrides_frame(engine, tenant="north")) == 1
    assert store.overrides_frame(engine, tenant="south").empty


def test_an_override_quantity_is_whole(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="whole number"):
        store.add_override(
            engine,
            cw_company_id=250,
            product="edr",
            rule="fixed",
            quantity=2.5,
            user="Jane",
            tenant="default",
        )


def test_retiring_records_who_in_the_note(engine: sa.Engine) -> None:
    row = store.add_override(
        engine,
        cw_company_id=250,
        product="edr",
        rule="minimum",
        quantity=5,
        note="floor",
        user="Jane",
        tenant="default",
    )
    retired = store.retire_override(engine, row["id"], user="Bob Smith", user_id="7", tenant="default")
    assert retired["active"] is False
    assert retired["note"].startswith("floor; retired by Bob Smith (id 7) ")
    again = store.retire_override(engine, row["id"], user="Carol", tenant="default")
    assert again["note"] == retired["note"]  # retiring a retired one changes nothing
    with pytest.raises(store.OverrideNotFound):
        store.retire_override(engine, 999, user="Bob", tenant="default")


def test_groups_sort_by_their_amount_at_stake(engine: sa.Engine) -> None:
    store.upsert_quarantine(
        engine,
        "r1",
        DAY,
        [
            {**held("company:1:edr", "change_exceeds_limit", "10"), "cw_company_id": 1},
            {**held("company:1:sat", "no_live_addition", "95"), "cw_company_id": 1},
            {**held("company:2:edr", "no_live_addition", "100"), "cw_company_id": 2},
            {**held("company:3:edr", "invalid_usage", None), "cw_company_id": 3},
        ],
        tenant="default",
    )
    q = store.quarantine
    stmt = (
        sa.select(q.c.cw_company_id)
        .group_by(q.c.cw_company_id)
        .order_by(*store.quarantine_group_order("amount"), q.c.cw_company_id)
    )
    with engine.connect() as conn:
        assert conn.execute(stmt).scalars().all() == [1, 2, 3]  # 105, 100, none
    assert store.quarantine_group_order("seen") == []
