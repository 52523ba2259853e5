"""Revision 0003 (docs/contract.md §4): the ledger names the approval it applied and may record
`created`; a database at 0002 is upgraded in place with every ledger row kept and its indexes and
unique key intact."""

from __future__ import annotations

from datetime import date

import pytest
import sqlalchemy as sa

from billing_sync import store
from billing_sync.store import migrations

DAY = date(2026, 11, 1)


def ledger_row(key: str, action: str, **more: object) -> dict[str, object]:
    return {
        "sync_key": key,
        "cw_company_id": 252,
        "product": "edr",
        "new_quantity": 12,
        "action": action,
        **more,
    }


def test_a_created_row_names_its_approval(engine: sa.Engine) -> None:
    approval = store.add_approval(
        engine, billing_date=DAY, sync_key="company:252:edr", cw_company_id=252, product="edr",
        kind="create_addition", agreement_id=1580, to_quantity=12, user="Bob", user_id="7", tenant="default"
    )  # fmt: skip
    store.record_changes(
        engine,
        "r1",
        DAY,
        [
            ledger_row(
                "company:252:edr", "created", agreement_id=1580, addition_id=900, approval_id=approval["id"]
            )
        ],  # fmt: skip
        tenant="default",
    )
    (row,) = store.changes_for_run(engine, "r1", tenant="default")
    assert (row["action"], row["approval_id"], row["addition_id"], row["previous_quantity"]) == (
        "created", approval["id"], 900, None,
    )  # fmt: skip
    store.record_changes(engine, "r2", DAY, [ledger_row("company:1:edr", "unchanged")], tenant="default")
    assert store.changes_for_run(engine, "r2", tenant="default")[0]["approval_id"] is None


def test_an_unknown_action_is_still_refused_by_the_database(engine: sa.Engine) -> None:
    store.ensure_schema(engine)
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            store.changes.insert().values(
                run_id="r", billing_date=DAY, sync_key="k", action="deleted", applied_at=sa.func.now()
            )
        )


def test_a_database_at_0002_keeps_its_ledger_and_gains_approvals(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        migrations.upgrade(conn, "0002")
        conn.execute(
            sa.text(
                "insert into billing_changes (run_id, billing_date, sync_key, action, applied_at, new_quantity, "
                "tenant) values ('old', :day, 'company:1:edr', 'updated', :at, 40, 'default')"
            ),
            {"day": DAY, "at": "2026-11-01 06:00:00"},
        )
    store.ensure_schema(engine)
    with engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.HEAD
    (kept,) = store.changes_for_run(engine, "old", tenant="default")
    assert (kept["action"], kept["new_quantity"], kept["approval_id"], kept["tenant"]) == (
        "updated",
        40,
        None,
        "default",
    )
    store.record_changes(
        engine, "new", DAY, [ledger_row("company:252:edr", "created", approval_id=3)], tenant="default"
    )
    assert store.changes_for_run(engine, "new", tenant="default")[0]["action"] == "created"
    inspector = sa.inspect(engine)
    assert {"ix_billing_changes_tenant_date", "ix_billing_changes_company"} <= {
        i["name"] for i in inspector.get_indexes("billing_changes")
    }
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the (run_id, sync_key) key
        conn.execute(
            store.changes.insert().values(
                run_id="old",
                billing_date=DAY,
                sync_key="company:1:edr",
                action="planned",
                applied_at=sa.func.now(),
            )
        )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:  # the CHECK, replaced
        conn.execute(
            store.changes.insert().values(
                run_id="x", billing_date=DAY, sync_key="k", action="deleted", applied_at=sa.func.now()
            )
        )
    names = [c["name"] for c in inspector.get_columns("billing_stg_outcomes")]
    assert "approval_id" in names and "billing_stg_agreements" in inspector.get_table_names()


def test_closing_an_approval_may_record_who_and_why_in_its_note(engine: sa.Engine) -> None:
    approval = store.add_approval(
        engine, billing_date=DAY, sync_key="company:251:edr", cw_company_id=251, product="edr", kind="change",
        addition_id=502, from_quantity=40, to_quantity=5, user="Alice", user_id="1", note="first", tenant="default"
    )  # fmt: skip
    closed = store.set_approval_status(
        engine, approval["id"], "revoked", note="first\nRevoked by Bob (id 2)", tenant="default"
    )
    assert (closed["status"], closed["note"], closed["applied_run_id"]) == (
        "revoked",
        "first\nRevoked by Bob (id 2)",
        None,
    )
    with pytest.raises(store.ApprovalConflict):
        store.set_approval_status(engine, approval["id"], "applied", run_id="r9", tenant="default")
