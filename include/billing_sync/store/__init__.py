"""The billing database: quarantine, ledger, runs, organization map and per-run staging of frames.

SQLAlchemy Core only, and the same on SQLite and PostgreSQL. Nothing here imports Airflow: the DAG
resolves the URL (`runtime.database_url()`: connection `billing_sync_db`, else
`default_url(AIRFLOW_HOME)`) and passes it in. Tables are created on first use of an engine. Every
value travels as a bound parameter.

Row dicts returned by the query functions use the column names of docs/contract.md §4; timestamps are
timezone-aware UTC and JSON columns come back decoded.

    schema           tables, column types, creation and in-place upgrades
    database         engines, transactions, the schema made ready on first use
    staging          per-run frames (`billing_stg_*`)
    quarantine_rows  `billing_quarantine`
    ledger           `billing_changes`
    run_records      `billing_runs`
    org_mapping      `billing_org_map`
    values           helpers they share

The modules of the last four tables are not named after them: `store.quarantine`, `store.runs`,
`store.changes` and `store.org_map` are the Table objects callers select from. Callers import this
package, never its modules.
"""

from __future__ import annotations

from ..runtime import default_url
from .database import engine_for, ensure_schema, make_engine
from .ledger import changes_for_run, ledger_count, list_changes, record_changes
from .org_mapping import delete_org_map, list_org_map, org_map_frame, org_map_rows_frame, set_org_map
from .quarantine_rows import (
    QuarantineNotFound,
    count_quarantine,
    get_quarantine,
    list_quarantine,
    resolve_superseded,
    resolve_synced,
    set_quarantine_status,
    upsert_quarantine,
)
from .run_records import RunNotFound, finish_run, get_run, list_runs, start_run
from .schema import (
    ACTIONS,
    MODES,
    QUARANTINE_STATUSES,
    ROW_COLUMN,
    changes,
    org_map,
    quarantine,
    runs,
    staging_table,
)
from .staging import newest_staged_run, purge_staging, read_frame, write_frame

__all__ = [
    "ACTIONS",
    "MODES",
    "QUARANTINE_STATUSES",
    "ROW_COLUMN",
    "QuarantineNotFound",
    "RunNotFound",
    "changes",
    "changes_for_run",
    "count_quarantine",
    "default_url",
    "delete_org_map",
    "engine_for",
    "ensure_schema",
    "finish_run",
    "get_quarantine",
    "get_run",
    "ledger_count",
    "list_changes",
    "list_org_map",
    "list_quarantine",
    "list_runs",
    "make_engine",
    "newest_staged_run",
    "org_map",
    "org_map_frame",
    "org_map_rows_frame",
    "purge_staging",
    "quarantine",
    "read_frame",
    "record_changes",
    "resolve_superseded",
    "resolve_synced",
    "runs",
    "set_org_map",
    "set_quarantine_status",
    "staging_table",
    "start_run",
    "upsert_quarantine",
    "write_frame",
]
