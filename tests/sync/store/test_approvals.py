"""store.approval_rows: `billing_approvals`, recorded, listed and closed (docs/contract.md §4)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from billing_sync import store

DAY = "2026-11-01"
CHANGE: dict[str, Any] = {
    "billing_date": DAY,
    "sync_key": "company:250:edr",
    "cw_company_id": 250,
    "product": "edr",
    "kind": "change",
    "addition_id": 501,
    "agreement_id": 1578,
    "from_quantity": 38,
    "to_quantity": 90,
    "user": "Jane Doe",
    "user_id": "42",
    "note": "new site onboarded",
}


def test_an_approval_is_recorded_pending_with_who_and_when(engine: sa.Engine) -> None:
    row = store.add_approval(engine, **CHANGE, tenant="default")
    assert row["status"] == "pending" and row["tenant"] == "default"
    assert (row["approved_by"], row["approved_by_id"], row["note"]) == (
        "Jane Doe",
        "42",
        "new site onboarded",
    )
    assert (row["from_quantity"], row["to_quantity"], row["addition_id"]) == (38.0, 90.0, 501)
    assert row["approved_at"].tzinfo is not None
    assert (row["applied_run_id"], row["applied_at"]) == (None, None)
    assert store.get_approval(engine, row["id"], tenant="default") == row
    assert store.list_approvals(engine, billing_date=DAY, status="pending", tenant="default") == [row]


def test_a_new_addition_is_approved_on_an_agreement(engine: sa.Engine) -> None:
    row = store.add_approval(
        engine,
        billing_date=DAY,
        sync_key="company:251:sat",
        cw_company_id=251,
        product="sat",
        kind="create_addition",
        agreement_id=1579,
        to_quantity=30,
        user="Jane",
        tenant="default",
    )
    assert (row["kind"], row["addition_id"], row["from_quantity"], row["agreement_id"]) == (
        "create_addition",
        None,
        None,
        1579,
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "delete_addition"}, "kind must be one of"),
        ({"addition_id": None}, "names its addition_id"),
        ({"from_quantity": None}, "names its addition_id and from_quantity"),
        ({"from_quantity": 90}, "from_quantity equals to_quantity"),
        ({"to_quantity": -1}, "to_quantity must be a non-negative number"),
        ({"to_quantity": float("nan")}, "to_quantity must be a non-negative number"),
        ({"to_quantity": True}, "to_quantity must be a non-negative number"),
        ({"cw_company_id": "acme"}, "cw_company_id must be an integer id"),
        ({"sync_key": ""}, "sync_key is required"),
        ({"user": " "}, "user is required"),
        ({"tenant": "North"}, "tenant must be"),
        ({"kind": "create_addition"}, "no addition_id or from_quantity"),
        (
            {"kind": "create_addition", "addition_id": None, "from_quantity": None, "agreement_id": None},
            "agreement_id",
        ),
    ],
)
def test_what_an_approval_must_say(engine: sa.Engine, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.add_approval(engine, **{"tenant": "default", **CHANGE, **change})
    assert store.list_approvals(engine, tenant="default") == []


def test_one_pending_approval_per_key_and_billing_date(engine: sa.Engine) -> None:
    first = store.add_approval(engine, **CHANGE, tenant="default")
    with pytest.raises(store.ApprovalConflict, match="already has a pending approval"):
        store.add_approval(engine, **{**CHANGE, "to_quantity": 95}, tenant="default")
    # Another billing date, another tenant: their own.
    store.add_approval(engine, **{**CHANGE, "billing_date": "2026-12-01"}, tenant="default")
    store.add_approval(engine, **{**CHANGE, "tenant": "north"})
    assert [a["id"] for a in store.list_approvals(engine, tenant="default")] == [first["id"], first["id"] + 1]
    assert len(store.list_approvals(engine, tenant="north")) == 1
    # Revoked, it no longer blocks a new one.
    store.set_approval_status(engine, first["id"], "revoked", tenant="default")
    assert (
        store.add_approval(engine, **{**CHANGE, "to_quantity": 95}, tenant="default")["status"] == "pending"
    )


def test_a_run_applies_an_approval_once(engine: sa.Engine) -> None:
    approval = store.add_approval(engine, **CHANGE, tenant="default")
    with pytest.raises(ValueError, match="run_id is required"):
        store.set_approval_status(engine, approval["id"], "applied", tenant="default")
    applied = store.set_approval_status(
        engine, approval["id"], "applied", run_id="scheduled__2026-11-01", tenant="default"
    )
    assert (applied["status"], applied["applied_run_id"]) == ("applied", "scheduled__2026-11-01")
    assert applied["applied_at"] is not None
    with pytest.raises(store.ApprovalConflict, match="is applied, not pending"):
        store.set_approval_status(engine, approval["id"], "stale", tenant="default")
    assert store.list_approvals(engine, status="pending", tenant="default") == []


def test_closing_statuses(engine: sa.Engine) -> None:
    stale = store.add_approval(engine, **CHANGE, tenant="default")
    assert store.set_approval_status(engine, stale["id"], "stale", tenant="default")["status"] == "stale"
    for bad in ("pending", "done"):
        with pytest.raises(ValueError, match="status must be one of"):
            store.set_approval_status(engine, stale["id"], bad, tenant="default")
    with pytest.raises(store.ApprovalNotFound):
        store.set_approval_status(engine, 999, "revoked", tenant="default")
    with pytest.raises(ValueError, match="status must be one of"):
        store.list_approvals(engine, status="done", tenant="default")
    assert store.get_approval(engine, 999, tenant="default") is None
