"""The billing database's public face: the store functions and the rows' types, from their modules.

The billing database holds the quarantine, ledger, runs, organization map, approvals, overrides,
per-run staging of frames, and the API accounts' recent calls.

SQLAlchemy Core only, and the same on SQLite and PostgreSQL. Nothing here imports Airflow: the DAG
resolves the URL (`runtime.database_url()`: connection `billing_sync_db`, else
`default_url(AIRFLOW_HOME)`) and passes it in. The schema is brought to its newest revision (Alembic
migrations, `store/migrations/`) on first use of an engine. Every value travels as a bound parameter.

Row dicts returned by the query functions use the column names of docs/contract.md §4; timestamps are
timezone-aware UTC and JSON columns come back decoded.

    schema           tables and column types as the newest revision leaves them
    migrations/      the schema's revisions (Alembic), run by `ensure_schema`
    database         engines, transactions, the schema migrated on first use
    staging          per-run frames (`billing_stg_*`)
    quarantine_rows  `billing_quarantine`
    ledger           `billing_changes`
    run_records      `billing_runs`
    org_mapping      `billing_org_map`
    approval_rows    `billing_approvals`
    override_rules   `billing_overrides`
    first_sightings  `billing_organizations_seen`: new organizations
    call_window      `billing_api_calls`: an API account's rate-limit window, shared by its tasks
    decisions        `billing_decisions`: every decision a person made, append-only
    records          the rows they hand out, one TypedDict per table
    values           helpers they share

The modules of the tables are not named after them: `store.quarantine`, `store.runs`,
`store.changes`, `store.org_map`, `store.approvals`, `store.overrides`, `store.organizations_seen`,
`store.api_calls` and `store.decision_history` are the Table objects callers select from. Callers
import this package, never its modules.
"""

from __future__ import annotations

from ..runtime import default_url
from .approval_rows import (
    ApprovalConflict,
    ApprovalNotFound,
    add_approval,
    get_approval,
    list_approvals,
    set_approval_status,
)
from .call_window import recent_api_calls, record_api_calls
from .database import engine_for, ensure_schema, make_engine
from .decisions import (
    DECISION_COLUMNS,
    DecisionNotRecorded,
    iter_decisions,
    list_decisions,
    record_settings_change,
)
from .first_sightings import (
    invoice_organizations,
    list_organizations_seen,
    new_organizations,
    record_organizations_seen,
)
from .handle import RunStore, TenantStore
from .ledger import changes_for_run, ledger_count, list_changes, record_changes
from .migrations import SchemaVersionError
from .org_mapping import delete_org_map, list_org_map, org_map_frame, org_map_rows_frame, set_org_map
from .override_rules import (
    OverrideConflict,
    OverrideNotFound,
    add_override,
    list_overrides,
    overrides_frame,
    retire_override,
)
from .quarantine_rows import (
    QUARANTINE_ORDERS,
    QuarantineNotFound,
    count_quarantine,
    get_quarantine,
    held_totals,
    list_quarantine,
    quarantine_group_order,
    quarantine_order,
    resolve_superseded,
    resolve_synced,
    set_quarantine_status,
    upsert_quarantine,
)
from .records import (
    ApprovalRow,
    DecisionEntry,
    LedgerRow,
    OrganizationSeen,
    OrgMapping,
    OverrideRow,
    QuarantineDecided,
    QuarantineRow,
    RunAlerts,
    RunRecord,
)
from .run_records import RunNotFound, add_run_checks, finish_run, get_run, list_runs, start_run
from .schema import (
    ACTIONS,
    APPROVAL_KINDS,
    APPROVAL_STATUSES,
    DECISION_KINDS,
    DECISION_SUBJECTS,
    DEFAULT_TENANT,
    MODES,
    OVERRIDE_RULES,
    QUARANTINE_STATUSES,
    ROW_COLUMN,
    api_calls,
    approvals,
    changes,
    org_map,
    organizations_seen,
    overrides,
    quarantine,
    runs,
    staging_table,
)
from .schema import decisions as decision_history  # `store.decisions` is the module of its functions
from .staging import newest_reconciled_run, newest_staged_run, purge_staging, read_frame, write_frame

__all__ = [
    "ACTIONS",
    "APPROVAL_KINDS",
    "APPROVAL_STATUSES",
    "DECISION_COLUMNS",
    "DECISION_KINDS",
    "DECISION_SUBJECTS",
    "DEFAULT_TENANT",
    "MODES",
    "OVERRIDE_RULES",
    "QUARANTINE_ORDERS",
    "QUARANTINE_STATUSES",
    "ROW_COLUMN",
    "ApprovalConflict",
    "ApprovalNotFound",
    "ApprovalRow",
    "DecisionEntry",
    "DecisionNotRecorded",
    "LedgerRow",
    "OrgMapping",
    "OrganizationSeen",
    "OverrideConflict",
    "OverrideNotFound",
    "OverrideRow",
    "QuarantineDecided",
    "QuarantineNotFound",
    "QuarantineRow",
    "RunNotFound",
    "RunAlerts",
    "RunRecord",
    "RunStore",
    "SchemaVersionError",
    "TenantStore",
    "add_approval",
    "add_override",
    "add_run_checks",
    "api_calls",
    "approvals",
    "changes",
    "changes_for_run",
    "count_quarantine",
    "decision_history",
    "default_url",
    "delete_org_map",
    "engine_for",
    "ensure_schema",
    "finish_run",
    "get_approval",
    "get_quarantine",
    "get_run",
    "held_totals",
    "invoice_organizations",
    "iter_decisions",
    "ledger_count",
    "list_approvals",
    "list_changes",
    "list_decisions",
    "list_org_map",
    "list_organizations_seen",
    "list_overrides",
    "list_quarantine",
    "list_runs",
    "make_engine",
    "new_organizations",
    "newest_reconciled_run",
    "newest_staged_run",
    "org_map",
    "org_map_frame",
    "org_map_rows_frame",
    "organizations_seen",
    "overrides",
    "overrides_frame",
    "purge_staging",
    "quarantine",
    "quarantine_group_order",
    "quarantine_order",
    "read_frame",
    "recent_api_calls",
    "record_api_calls",
    "record_changes",
    "record_settings_change",
    "record_organizations_seen",
    "resolve_superseded",
    "resolve_synced",
    "retire_override",
    "runs",
    "set_approval_status",
    "set_org_map",
    "set_quarantine_status",
    "staging_table",
    "start_run",
    "upsert_quarantine",
    "write_frame",
]
