"""The billing database as the code before the migrations made it (0.1.0), for upgrade tests.

The tables are copied from `git show 8b51a3e:include/billing_sync/store/schema.py` (the schema
module as it stood until the migrations), the staging columns from that commit's `frames.SCHEMAS`,
and `create` is that commit's create path (`create_missing`): create the missing tables, add missing nullable
columns in place. An independent copy, on purpose: `billing_sync.store.migrations.baseline` must
build the same database, and test_migrations.py checks that it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa

from billing_sync.store.schema import JSONText, UTCDateTime, _add_missing_columns

metadata = sa.MetaData()

_OPEN = sa.text("status = 'open'")


def _one_of(column: str, values: Sequence[str], table: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=f"ck_{table}_{column}")


quarantine = sa.Table(
    "billing_quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("billing_date", sa.Date, nullable=False),
    sa.Column("huntress_organization_id", sa.BigInteger),
    sa.Column("huntress_organization_name", sa.Text),
    sa.Column("cw_company_id", sa.BigInteger),
    sa.Column("product", sa.Text),
    sa.Column("reason_code", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("payload", JSONText),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("resolved_by", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("sync_key", sa.Text, nullable=False),
    sa.Column("resolved_by_id", sa.Text),
    _one_of("status", ("open", "resolved", "dismissed"), "billing_quarantine"),
    sa.Index("ix_billing_quarantine_sync_key", "sync_key"),
    sa.Index("ix_billing_quarantine_date_status", "billing_date", "status"),
    sa.Index(
        "uq_billing_quarantine_open",
        "billing_date",
        "sync_key",
        "reason_code",
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    ),
)

changes = sa.Table(
    "billing_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("billing_date", sa.Date, nullable=False),
    sa.Column("cw_company_id", sa.BigInteger),
    sa.Column("agreement_id", sa.BigInteger),
    sa.Column("addition_id", sa.BigInteger),
    sa.Column("product", sa.Text),
    sa.Column("huntress_quantity", sa.BigInteger),
    sa.Column("previous_quantity", sa.Double),
    sa.Column("new_quantity", sa.Double),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
    sa.Column("sync_key", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "sync_key", name="uq_billing_changes_run_key"),
    _one_of("action", ("updated", "unchanged", "planned", "failed"), "billing_changes"),
    sa.Index("ix_billing_changes_billing_date", "billing_date"),
    sa.Index("ix_billing_changes_company", "cw_company_id"),
)

runs = sa.Table(
    "billing_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("billing_date", sa.Date, nullable=False),
    sa.Column("invoice_id", sa.BigInteger),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("counts", JSONText),
    sa.Column("checks", JSONText),
    sa.Column("report_path", sa.Text),
    sa.Column("settings", JSONText),
    _one_of("mode", ("push", "dry_run", "report_only"), "billing_runs"),
    sa.Index("ix_billing_runs_billing_date", "billing_date"),
    sa.Index("ix_billing_runs_started_at", "started_at"),
)

org_map = sa.Table(
    "billing_org_map",
    metadata,
    sa.Column("huntress_organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("cw_company_id", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by_id", sa.Text),
)

# frames.SCHEMAS at that commit, as `_sql_type` typed them.
_FRAMES: dict[str, dict[str, Any]] = {
    "usage": {
        "invoice_id": sa.BigInteger,
        "line_id": sa.BigInteger,
        "organization_id": sa.BigInteger,
        "organization_name": sa.Text,
        "product": sa.Text,
        "raw_quantity": sa.Text,
        "quantity": sa.BigInteger,
        "issue": sa.Text,
    },
    "organizations": {
        "organization_id": sa.BigInteger,
        "name": sa.Text,
        "key": sa.Text,
        "account_id": sa.BigInteger,
    },
    "companies": {"company_id": sa.BigInteger, "identifier": sa.Text, "name": sa.Text},
    "additions": {
        "addition_id": sa.BigInteger,
        "agreement_id": sa.BigInteger,
        "company_id": sa.BigInteger,
        "agreement_name": sa.Text,
        "agreement_type": sa.Text,
        "agreement_status": sa.Text,
        "agreement_cancelled": sa.Boolean,
        "agreement_start_date": sa.DateTime(timezone=True),
        "agreement_end_date": sa.DateTime(timezone=True),
        "product_identifier": sa.Text,
        "quantity": sa.Double,
        "unit_price": sa.Double,
        "effective_date": sa.DateTime(timezone=True),
        "cancelled_date": sa.DateTime(timezone=True),
        "addition_status": sa.Text,
        "unreadable_dates": sa.Text,
        "issue": sa.Text,
    },
    "org_map": {"organization_id": sa.BigInteger, "company_id": sa.BigInteger},
    "outcomes": {
        "sync_key": sa.Text,
        "company_id": sa.BigInteger,
        "company_name": sa.Text,
        "organization_ids": sa.Text,
        "organization_names": sa.Text,
        "match_rule": sa.Text,
        "product": sa.Text,
        "catalog_identifier": sa.Text,
        "agreement_id": sa.BigInteger,
        "addition_id": sa.BigInteger,
        "huntress_quantity": sa.BigInteger,
        "previous_quantity": sa.Double,
        "new_quantity": sa.BigInteger,
        "outcome": sa.Text,
        "reason_code": sa.Text,
        "detail": sa.Text,
    },
}

STAGING = {
    name: sa.Table(
        f"billing_stg_{name}",
        metadata,
        sa.Column("run_id", sa.Text, primary_key=True),
        *(sa.Column(col, type_) for col, type_ in columns.items()),
        sa.Column("row_no", sa.Integer, primary_key=True, autoincrement=False),
    )
    for name, columns in _FRAMES.items()
}

_SCHEMA_LOCK_KEY = 0x62696C6C5F737463


def create(engine: sa.Engine) -> None:
    """What 0.1.0's `ensure_schema` did: missing tables and indexes created, nullable columns added."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        metadata.create_all(conn, checkfirst=True)
        _add_missing_columns(conn, metadata.sorted_tables)


DAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)


def fill(engine: sa.Engine) -> dict[str, list[dict[str, Any]]]:
    """A few rows in every table, as 0.1.0 wrote them; returns them by table name."""
    rows: dict[str, list[dict[str, Any]]] = {
        "billing_runs": [
            {
                "run_id": "scheduled__2026-11-01",
                "billing_date": DAY,
                "invoice_id": 5001,
                "mode": "push",
                "started_at": NOW,
                "finished_at": NOW,
                "status": "success",
                "counts": {"total": 2, "updated": 1},
                "checks": {"mismatches": []},
                "report_path": "/reports/2026-11-01/x",
                "settings": {"dry_run": False},
            }
        ],
        "billing_quarantine": [
            {
                "run_id": "scheduled__2026-11-01",
                "billing_date": DAY,
                "huntress_organization_id": 101,
                "huntress_organization_name": "Acme Corp",
                "cw_company_id": 250,
                "product": "edr",
                "reason_code": "change_exceeds_limit",
                "detail": "40 → 90",
                "payload": {"old": 40, "new": 90},
                "status": status,
                "first_seen_at": NOW,
                "last_seen_at": NOW,
                "sync_key": "company:250:edr",
                "resolved_by": None if status == "open" else "carol",
                "resolved_by_id": None if status == "open" else "7",
            }
            for status in ("open", "dismissed")
        ],
        "billing_changes": [
            {
                "run_id": "scheduled__2026-11-01",
                "billing_date": DAY,
                "cw_company_id": 251,
                "agreement_id": 1578,
                "addition_id": 501,
                "product": "itdr",
                "huntress_quantity": 12,
                "previous_quantity": 10.5,
                "new_quantity": 12.0,
                "action": "updated",
                "applied_at": NOW,
                "sync_key": "company:251:itdr",
            }
        ],
        "billing_org_map": [
            {
                "huntress_organization_id": org,
                "cw_company_id": 250 + org,
                "note": "by hand",
                "created_by": "carol",
                "created_at": NOW,
                "created_by_id": "7",
            }
            for org in (1, 2)
        ],
        "billing_stg_organizations": [
            {"run_id": "scheduled__2026-11-01", "row_no": i, "organization_id": 100 + i, "name": f"Org {i}"}
            for i in range(3)
        ],
    }
    with engine.begin() as conn:
        for name, table_rows in rows.items():
            conn.execute(metadata.tables[name].insert(), table_rows)
    return rows
