"""store/records.py: each row the store hands out is typed by its table's columns, no more, no fewer;
the rows a run hands the store to write (billing_sync.run_rows) name only columns of their tables."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from billing_sync import run_rows, store
from billing_sync.store import records, schema

TABLES = [
    (records.RunRecord, schema.runs),
    (records.QuarantineRow, schema.quarantine),
    (records.LedgerRow, schema.changes),
    (records.ApprovalRow, schema.approvals),
    (records.OverrideRow, schema.overrides),
    (records.OrgMapping, schema.org_map),
    (records.OrganizationSeen, schema.organizations_seen),
    (records.DecisionEntry, schema.decisions),
]


@pytest.mark.parametrize(("record", "table"), TABLES, ids=[t.name for _, t in TABLES])
def test_a_record_holds_exactly_its_tables_columns(record: type, table: sa.Table) -> None:
    assert set(record.__annotations__) == {c.name for c in table.columns}


def test_a_quarantine_decision_keeps_columns_of_the_row() -> None:
    assert set(records.QuarantineDecided.__annotations__) < set(records.QuarantineRow.__annotations__)


@pytest.mark.parametrize(
    ("written", "table"),
    [(run_rows.QuarantineInput, schema.quarantine), (run_rows.LedgerInput, schema.changes)],
    ids=["quarantine", "ledger"],
)
def test_what_a_run_writes_names_columns_of_its_table(written: type, table: sa.Table) -> None:
    assert set(written.__annotations__) <= {c.name for c in table.columns}


def test_a_row_read_back_has_the_keys_of_its_record(engine: sa.Engine) -> None:
    store.start_run(engine, "r1", "2026-05-01", None, "dry_run", {}, tenant="acme")
    run = store.get_run(engine, "r1", tenant="acme")
    assert run is not None and set(run) == set(records.RunRecord.__annotations__)
    store.set_org_map(engine, 7, 70, None, "ann", tenant="acme")
    (mapping,) = store.list_org_map(engine, tenant="acme")
    assert set(mapping) == set(records.OrgMapping.__annotations__)


def test_the_cleaned_inputs_carry_exactly_their_typed_columns() -> None:
    """The store cleans an input column by column (ledger._CHANGE_FIELDS, quarantine_rows._Q_FIELDS):
    those lists and the typed inputs name the same columns."""
    from billing_sync.run_rows import LedgerInput, QuarantineInput
    from billing_sync.store import ledger, quarantine_rows

    cleaned = {*ledger._CHANGE_FIELDS, *ledger._MONEY_FIELDS, "sync_key", "action", "applied_at"}
    assert cleaned == set(LedgerInput.__annotations__)
    cleaned = {*quarantine_rows._Q_FIELDS, "sync_key", "reason_code", "payload", "amount_at_stake"}
    assert cleaned == set(QuarantineInput.__annotations__)
