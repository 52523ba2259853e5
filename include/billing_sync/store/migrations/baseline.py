"""The billing database as 0.1.0 made it, before Alembic: revision 0001's tables, frozen.

Never edit this module: it is what revision 0001 creates and what a database made before the
migrations is caught up to before it is stamped (`migrations.upgrade`). A change to the schema is a
new revision in `versions/`, with `schema.py` changed to match.

Plain SQLAlchemy types only (the DDL of `schema.UTCDateTime` is a timezone-aware DATETIME, of
`schema.JSONText` TEXT); the staging columns are those of the frames at the time.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

_OPEN = sa.text("status = 'open'")


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


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
    sa.Column("payload", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("first_seen_at", _utc(), nullable=False),
    sa.Column("last_seen_at", _utc(), nullable=False),
    sa.Column("resolved_at", _utc()),
    sa.Column("resolved_by", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("sync_key", sa.Text, nullable=False),
    sa.Column("resolved_by_id", sa.Text),
    sa.CheckConstraint("status IN ('open', 'resolved', 'dismissed')", name="ck_billing_quarantine_status"),
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
    sa.Column("applied_at", _utc(), nullable=False),
    sa.Column("sync_key", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "sync_key", name="uq_billing_changes_run_key"),
    sa.CheckConstraint(
        "action IN ('updated', 'unchanged', 'planned', 'failed')", name="ck_billing_changes_action"
    ),
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
    sa.Column("started_at", _utc(), nullable=False),
    sa.Column("finished_at", _utc()),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("counts", sa.Text),
    sa.Column("checks", sa.Text),
    sa.Column("report_path", sa.Text),
    sa.Column("settings", sa.Text),
    sa.CheckConstraint("mode IN ('push', 'dry_run', 'report_only')", name="ck_billing_runs_mode"),
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
    sa.Column("created_at", _utc(), nullable=False),
    sa.Column("created_by_id", sa.Text),
)


def _staging(name: str, *columns: sa.Column[object]) -> sa.Table:
    """A staging table: keyed by (run_id, row_no), the frame's columns between them."""
    return sa.Table(
        f"billing_stg_{name}",
        metadata,
        sa.Column("run_id", sa.Text, primary_key=True),
        *columns,
        sa.Column("row_no", sa.Integer, primary_key=True, autoincrement=False),
    )


def _text(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Text)


def _int(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.BigInteger)


def _float(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Double)


def _time(name: str) -> sa.Column[object]:
    return sa.Column(name, _utc())


STAGING = [
    _staging(
        "usage",
        _int("invoice_id"),
        _int("line_id"),
        _int("organization_id"),
        _text("organization_name"),
        _text("product"),
        _text("raw_quantity"),
        _int("quantity"),
        _text("issue"),
    ),
    _staging("organizations", _int("organization_id"), _text("name"), _text("key"), _int("account_id")),
    _staging("companies", _int("company_id"), _text("identifier"), _text("name")),
    _staging(
        "additions",
        _int("addition_id"),
        _int("agreement_id"),
        _int("company_id"),
        _text("agreement_name"),
        _text("agreement_type"),
        _text("agreement_status"),
        sa.Column("agreement_cancelled", sa.Boolean),
        _time("agreement_start_date"),
        _time("agreement_end_date"),
        _text("product_identifier"),
        _float("quantity"),
        _float("unit_price"),
        _time("effective_date"),
        _time("cancelled_date"),
        _text("addition_status"),
        _text("unreadable_dates"),
        _text("issue"),
    ),
    _staging("org_map", _int("organization_id"), _int("company_id")),
    _staging(
        "outcomes",
        _text("sync_key"),
        _int("company_id"),
        _text("company_name"),
        _text("organization_ids"),
        _text("organization_names"),
        _text("match_rule"),
        _text("product"),
        _text("catalog_identifier"),
        _int("agreement_id"),
        _int("addition_id"),
        _int("huntress_quantity"),
        _float("previous_quantity"),
        _int("new_quantity"),
        _text("outcome"),
        _text("reason_code"),
        _text("detail"),
    ),
]
