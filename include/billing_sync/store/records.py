"""The rows the billing database hands out, one TypedDict per table.

Each record has the columns as the newest schema revision leaves them (`schema`;
tests/sync/store/test_records.py holds them equal).

Timestamps are timezone-aware UTC, money columns `Decimal`, JSON columns decoded. A row comes out of
`values._rows` / `values._row`, which read the result as the record its caller names: the database is
ours, so the record is what the table holds. What a run hands the store to write (its quarantine and
ledger rows) is typed in `billing_sync.run_rows`, below the store, where `rows` builds it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypedDict

from ..config import SettingsDict
from ..results import RecordedChecks
from ..runref import Scope


class RunRecord(TypedDict):
    """A run record (`billing_runs`)."""

    tenant: str
    run_id: str
    billing_date: date
    invoice_id: int | None
    mode: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    counts: dict[str, int] | None
    # As the run closed (results), and `alerts` once an alert about it failed (RunAlerts). A run
    # recorded by an older release may lack a key its type names: read stored checks with `.get`.
    checks: RecordedChecks | None
    report_path: str | None
    settings: SettingsDict | None
    scope: Scope | None  # an apply's conf (docs/contract.md §4); None for a full run of the billing date


class RunAlerts(TypedDict):
    """What became of the alerts about a closed run that did not go out (`add_run_checks`), by medium."""

    alerts: dict[str, str]


class QuarantineRow(TypedDict):
    """A quarantine row (`billing_quarantine`)."""

    id: int
    tenant: str
    run_id: str
    billing_date: date
    sync_key: str
    reason_code: str
    huntress_organization_id: int | None
    huntress_organization_name: str | None
    cw_company_id: int | None
    product: str | None
    catalog_identifier: str | None
    detail: str | None
    payload: dict[str, Any] | None  # the reconcile row that held the key, kept as JSON as it was
    amount_at_stake: Decimal | None
    status: str
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_by_id: str | None
    note: str | None


class QuarantineDecided(TypedDict):
    """The columns of a quarantine row a reviewer's decision changes (`decisions.QUARANTINE_DECIDED`):
    what the decision's history entry keeps before and after."""

    status: str
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_by_id: str | None
    note: str | None


class LedgerRow(TypedDict):
    """A ledger row (`billing_changes`): what the push did with one key of one run."""

    id: int
    tenant: str
    run_id: str
    billing_date: date
    sync_key: str
    action: str
    cw_company_id: int | None
    agreement_id: int | None
    addition_id: int | None
    product: str | None
    catalog_identifier: str | None
    huntress_quantity: int | None
    previous_quantity: float | None
    new_quantity: float | None
    unit_price: Decimal | None
    monthly_amount_delta: Decimal | None
    override_id: int | None
    approval_id: int | None
    applied_at: datetime


class NewApproval(TypedDict):
    """A new approval's columns, checked, as `add_approval` inserts them."""

    tenant: str
    billing_date: date
    sync_key: str
    cw_company_id: int
    product: str
    kind: str
    addition_id: int | None
    agreement_id: int | None
    from_quantity: float | None
    to_quantity: float
    status: str
    approved_by: str
    approved_by_id: str | None
    approved_at: datetime
    note: str | None


class ApprovalRow(NewApproval):
    """An approval (`billing_approvals`) of one held change or of a new addition."""

    id: int
    applied_run_id: str | None
    applied_at: datetime | None


class OverrideRow(TypedDict):
    """A standing override (`billing_overrides`) of a company and product."""

    id: int
    tenant: str
    cw_company_id: int
    product: str
    rule: str
    quantity: float | None  # None for `exclude`
    note: str | None
    created_by: str
    created_by_id: str | None
    created_at: datetime
    active: bool


class OrgMapping(TypedDict):
    """An organization mapped to a company by a person (`billing_org_map`)."""

    tenant: str
    huntress_organization_id: int
    cw_company_id: int
    note: str | None
    created_by: str | None
    created_by_id: str | None
    created_at: datetime


class OrganizationSeen(TypedDict):
    """An organization's first sighting on a push run's invoice (`billing_organizations_seen`)."""

    tenant: str
    huntress_organization_id: int
    name: str | None
    first_billing_date: date
    first_run_id: str
    first_seen_at: datetime


class DecisionEntry(TypedDict):
    """An entry of the decision history (`billing_decisions`)."""

    id: int
    tenant: str
    at: datetime
    actor_id: str | None
    actor_name: str | None
    kind: str
    subject: str
    subject_id: str
    # The subject as it stood, as JSON: a quarantine row's decided columns, a mapping, approval or
    # override row, changed settings. Compared field by field, whatever the subject.
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    note: str | None
    quarantine_id: int | None
    sync_key: str | None
    huntress_organization_id: int | None
    cw_company_id: int | None
    product: str | None
    approval_id: int | None
    override_id: int | None
