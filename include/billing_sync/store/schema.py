"""The tables of the billing database as the newest schema revision leaves them, and their column types.

Declarations only, plus `_add_missing_columns`, the in-place upgrade of databases made before the
migrations, which `migrations.upgrade` runs inside the caller's transaction: this module opens no
connection of its own. The tables are created and changed by the migrations (`store/migrations/`),
never from these declarations; a test checks that the newest revision builds exactly these.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import frames, names
from .values import _clean

QUARANTINE_STATUSES = ("open", "resolved", "dismissed")
ACTIONS = ("updated", "unchanged", "planned", "failed", "created")  # created: revision 0003
MODES = ("push", "dry_run", "report_only")
APPROVAL_KINDS = ("change", "create_addition")
APPROVAL_STATUSES = ("pending", "applied", "stale", "revoked")
OVERRIDE_RULES = ("minimum", "fixed", "exclude")
# Revision 0008: what a person decided (billing_decisions), the contract's kinds in its order;
# `create` is an approval of a new addition, `apply` the desk's Apply-now (issue 20, not recorded yet).
DECISION_KINDS = (
    "dismiss",
    "resolve",
    "reopen",
    "map",
    "unmap",
    "approve",
    "revoke",
    "create",
    "override_add",
    "override_end",
    "settings",
    "apply",
)
# What a decision is about; `subject_id` names which one (docs/contract.md §4 billing_decisions).
DECISION_SUBJECTS = ("quarantine", "mapping", "approval", "override", "settings", "run")
DEFAULT_TENANT = "default"  # the single-tenant form's tenant (docs/contract.md §1 Tenants)
# One list of reason codes for the whole package: the contract's nine and its extensions.
REASON_CODES = tuple(names.REASON_CODES)

STAGING_PREFIX = "billing_stg_"
ROW_COLUMN = "row_no"  # staging: position of the row in the frame, so reads keep insertion order
_SCHEMA_LOCK_KEY = 0x62696C6C5F737463  # PostgreSQL advisory lock serializing schema changes


# --- column types -------------------------------------------------------------------------------


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out.

    SQLite stores no offset, so values are written as UTC wall time and read back as UTC; naive
    input is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONText(sa.TypeDecorator[Any]):
    """JSON stored as TEXT (the contract says "JSON text"), so any tool can read it as a string."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(_jsonable(value), ensure_ascii=False, sort_keys=True, allow_nan=False)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else json.loads(value)


def _jsonable(value: Any) -> Any:
    """Strict JSON for other tools: NA and NaN/inf become null, numpy and dates become plain values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    value = _clean(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _sql_type(dtype: str) -> sa.types.TypeEngine[Any]:
    """SQL type of a staging column from its pandas dtype in `frames.SCHEMAS`."""
    if dtype == "Int64":
        return sa.BigInteger()
    if dtype == "string":
        return sa.Text()
    if dtype == "Float64":
        return sa.Double()
    if dtype == "boolean":
        return sa.Boolean()
    if dtype.startswith("datetime64"):
        return sa.DateTime(timezone=True)
    raise ValueError(f"no SQL type for pandas dtype {dtype!r}: add it to store.schema._sql_type")


# --- tables ---------------------------------------------------------------------------------------

metadata = sa.MetaData()

_OPEN = sa.text("status = 'open'")
_PENDING = sa.text("status = 'pending'")
_ACTIVE = sa.text("active")


def _one_of(column: str, values: Sequence[str], table: str) -> sa.CheckConstraint:
    """CHECK (column IN (...)) from the tuple above that the write functions also check against."""
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=f"ck_{table}_{column}")


def _tenant() -> sa.Column[str]:
    """The tenant a row belongs to (revision 0002); rows written without one are the default's."""
    return sa.Column("tenant", sa.Text, nullable=False, server_default=DEFAULT_TENANT)


def _money(name: str) -> sa.Column[Decimal]:
    return sa.Column(name, sa.Numeric())


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
    # Who decided, as the auth manager's user id (resolved_by holds the display name). Added in
    # place to older databases (`_add_missing_columns`), hence last and nullable.
    sa.Column("resolved_by_id", sa.Text),
    # Revision 0002 (columns added to existing tables come last).
    _tenant(),
    _money("amount_at_stake"),  # unit price × |Huntress − ConnectWise| where a price is known
    # Revision 0011: the catalog item of the key (a product may keep several in step).
    sa.Column("catalog_identifier", sa.Text),
    _one_of("status", QUARANTINE_STATUSES, "billing_quarantine"),
    sa.Index("ix_billing_quarantine_sync_key", "sync_key"),
    sa.Index("ix_billing_quarantine_tenant_date_status", "tenant", "billing_date", "status"),
    # The database itself guarantees "at most one open row per tenant, billing date, key and reason".
    sa.Index(
        "uq_billing_quarantine_open",
        "tenant",
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
    sa.Column("previous_quantity", sa.Double),  # ConnectWise quantities are decimals
    sa.Column("new_quantity", sa.Double),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
    sa.Column("sync_key", sa.Text, nullable=False),
    _tenant(),
    _money("unit_price"),  # the addition's, at read
    _money("monthly_amount_delta"),  # unit_price × (new − previous)
    # Revision 0003: the billing_overrides row that decided the quantity (retired, never deleted).
    sa.Column("override_id", sa.BigInteger),
    # Revision 0003: the billing_approvals row whose approved change or new addition this row records.
    sa.Column("approval_id", sa.Integer),
    # Revision 0011: the catalog item of the key's addition (a product may keep several in step).
    sa.Column("catalog_identifier", sa.Text),
    sa.UniqueConstraint("tenant", "run_id", "sync_key", name="uq_billing_changes_run_key"),  # revision 0006
    _one_of("action", ACTIONS, "billing_changes"),
    sa.Index("ix_billing_changes_tenant_date", "tenant", "billing_date"),
    sa.Index("ix_billing_changes_company", "cw_company_id"),
)

runs = sa.Table(
    "billing_runs",
    metadata,
    sa.Column("run_id", sa.Text, nullable=False),
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
    _tenant(),
    # Revision 0009: null for a full run of the billing date; the apply DAG's conf for a scoped run
    # (docs/contract.md §4), which reads nothing but the keys it names.
    sa.Column("scope", JSONText),
    # Revision 0006: every tenant's DAG has the same run ids, so a run is (tenant, run_id).
    sa.PrimaryKeyConstraint("tenant", "run_id"),
    _one_of("mode", MODES, "billing_runs"),
    sa.Index("ix_billing_runs_tenant_date", "tenant", "billing_date"),
    sa.Index("ix_billing_runs_started_at", "started_at"),
)

org_map = sa.Table(
    "billing_org_map",
    metadata,
    sa.Column("huntress_organization_id", sa.BigInteger, nullable=False, autoincrement=False),
    sa.Column("cw_company_id", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by_id", sa.Text),  # the user id beside created_by's display name; added in place
    _tenant(),
    # One mapping per organization per tenant.
    sa.PrimaryKeyConstraint("tenant", "huntress_organization_id", name="pk_billing_org_map"),
)

# A person's approval of one change (or of a new addition) that the guard would hold.
approvals = sa.Table(
    "billing_approvals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _tenant(),
    sa.Column("billing_date", sa.Date, nullable=False),
    sa.Column("sync_key", sa.Text, nullable=False),
    sa.Column("cw_company_id", sa.BigInteger, nullable=False),
    sa.Column("product", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("addition_id", sa.BigInteger),
    sa.Column("agreement_id", sa.BigInteger),
    sa.Column("from_quantity", sa.Double),
    sa.Column("to_quantity", sa.Double, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("approved_by", sa.Text, nullable=False),
    sa.Column("approved_by_id", sa.Text),
    sa.Column("approved_at", UTCDateTime, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("applied_run_id", sa.Text),
    sa.Column("applied_at", UTCDateTime),
    _one_of("kind", APPROVAL_KINDS, "billing_approvals"),
    _one_of("status", APPROVAL_STATUSES, "billing_approvals"),
    sa.Index("ix_billing_approvals_tenant_date_status", "tenant", "billing_date", "status"),
    # At most one pending approval per tenant, billing date and key: a run never has two to choose from.
    sa.Index(
        "uq_billing_approvals_pending",
        "tenant",
        "billing_date",
        "sync_key",
        unique=True,
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    ),
)

# A standing rule for a company and product: bill at least / exactly `quantity`, or never touch it.
overrides = sa.Table(
    "billing_overrides",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    _tenant(),
    sa.Column("cw_company_id", sa.BigInteger, nullable=False),
    sa.Column("product", sa.Text, nullable=False),
    sa.Column("rule", sa.Text, nullable=False),
    sa.Column("quantity", sa.Double),
    sa.Column("note", sa.Text),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("created_by_id", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    _one_of("rule", OVERRIDE_RULES, "billing_overrides"),
    # At most one active rule per tenant, company and product.
    sa.Index(
        "uq_billing_overrides_active",
        "tenant",
        "cw_company_id",
        "product",
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    ),
)

# Revision 0005: each organization a push run found on its invoice, once per tenant (new organizations,
# docs/contract.md §4). first_run_id and first_seen_at never change; first_billing_date only moves earlier.
organizations_seen = sa.Table(
    "billing_organizations_seen",
    metadata,
    _tenant(),
    sa.Column("huntress_organization_id", sa.BigInteger, nullable=False, autoincrement=False),
    sa.Column("name", sa.Text),
    sa.Column("first_billing_date", sa.Date, nullable=False),
    sa.Column("first_run_id", sa.Text, nullable=False),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("tenant", "huntress_organization_id", name="pk_billing_organizations_seen"),
    sa.Index("ix_billing_organizations_seen_first_run", "tenant", "first_run_id"),
)


# Revision 0007: the recent request starts of an API account, so every task of the account starts
# with the rate-limit window its predecessors left (docs/contract.md §4). Keyed by the account, not
# a tenant: tenants that bill from one Huntress account share its window. Unix time in seconds (a
# float, so a start reads back exactly as it was written); `calls` counts starts that share a stamp.
api_calls = sa.Table(
    "billing_api_calls",
    metadata,
    sa.Column("api", sa.Text, nullable=False),
    sa.Column("account", sa.Text, nullable=False),
    sa.Column("started_epoch", sa.Double, nullable=False),
    sa.Column("calls", sa.Integer, nullable=False, server_default="1"),
    sa.PrimaryKeyConstraint("api", "account", "started_epoch", name="pk_billing_api_calls"),
)


# Revision 0008: every decision a person made, append-only (docs/contract.md §4 billing_decisions).
# The contract's columns, then the extensions that make a row's or a company's history one indexed
# query (the rest of the subject is in `before` / `after`); who decided may be null only when a
# script called the store without naming anyone.
decisions = sa.Table(
    "billing_decisions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant", sa.Text, nullable=False),  # no default: an entry always says whose it is
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor_id", sa.Text),
    sa.Column("actor_name", sa.Text),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("subject_id", sa.Text, nullable=False),
    sa.Column("before", JSONText),
    sa.Column("after", JSONText),
    sa.Column("note", sa.Text),
    # Extensions (docs/contract.md): the subject's keys, for "a row's / a company's history".
    sa.Column("quarantine_id", sa.Integer),
    sa.Column("sync_key", sa.Text),
    sa.Column("huntress_organization_id", sa.BigInteger),
    sa.Column("cw_company_id", sa.BigInteger),
    sa.Column("product", sa.Text),
    sa.Column("approval_id", sa.Integer),
    sa.Column("override_id", sa.Integer),
    _one_of("kind", DECISION_KINDS, "billing_decisions"),
    _one_of("subject", DECISION_SUBJECTS, "billing_decisions"),
    sa.Index("ix_billing_decisions_tenant_row", "tenant", "quarantine_id"),
    sa.Index("ix_billing_decisions_tenant_company", "tenant", "cw_company_id"),
    sa.Index("ix_billing_decisions_tenant_org", "tenant", "huntress_organization_id"),
)

# The database itself refuses to change or remove a decision, whoever asks. The same statements as
# revision 0008 runs (a test compares both databases' triggers), fired when the table is created.
# No '%' nor ':' in them: a DB-API driver formats with '%', and Alembic's op.execute binds ':name'.
DECISIONS_TRIGGERS = {
    "sqlite": (
        "CREATE TRIGGER billing_decisions_no_update BEFORE UPDATE ON billing_decisions "
        "BEGIN SELECT RAISE(ABORT, 'billing_decisions is append-only, UPDATE refused'); END",
        "CREATE TRIGGER billing_decisions_no_delete BEFORE DELETE ON billing_decisions "
        "BEGIN SELECT RAISE(ABORT, 'billing_decisions is append-only, DELETE refused'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION billing_decisions_append_only() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', "
        "MESSAGE = 'billing_decisions is append-only, ' || TG_OP || ' refused'; END $$",
        "CREATE TRIGGER billing_decisions_append_only BEFORE UPDATE OR DELETE ON billing_decisions "
        "FOR EACH ROW EXECUTE FUNCTION billing_decisions_append_only()",
        "CREATE TRIGGER billing_decisions_no_truncate BEFORE TRUNCATE ON billing_decisions "
        "FOR EACH STATEMENT EXECUTE FUNCTION billing_decisions_append_only()",
    ),
}


def _append_only(_table: sa.Table, connection: Connection, **_: Any) -> None:
    for statement in DECISIONS_TRIGGERS.get(connection.dialect.name, ()):
        connection.exec_driver_sql(statement)


sa.event.listen(decisions, "after_create", _append_only)


def _staging(name: str, schema: Mapping[str, str]) -> sa.Table:
    if {ROW_COLUMN, "run_id", "tenant"} & set(schema):
        raise ValueError(f"frame {name!r} uses a column name reserved by staging")
    # Primary key (tenant, run_id, row_no): its index serves "this run's rows, in order" and the
    # delete. The tenant came with revision 0006, hence last.
    return sa.Table(
        f"{STAGING_PREFIX}{name}",
        metadata,
        sa.Column("run_id", sa.Text, nullable=False),
        *(sa.Column(col, _sql_type(dtype)) for col, dtype in schema.items()),
        sa.Column(ROW_COLUMN, sa.Integer, nullable=False, autoincrement=False),
        _tenant(),
        sa.PrimaryKeyConstraint("tenant", "run_id", ROW_COLUMN),
    )


STAGING: dict[str, sa.Table] = {name: _staging(name, schema) for name, schema in frames.SCHEMAS.items()}


def staging_table(name: str) -> sa.Table:
    try:
        return STAGING[name]
    except KeyError:
        raise ValueError(f"unknown frame {name!r}; known: {sorted(STAGING)}") from None


# --- the in-place upgrade of databases made before the migrations ----------------------------------


def _add_missing_columns(conn: Connection, tables: Iterable[sa.Table]) -> None:
    """Nullable columns a table gained before the migrations existed: a frame's new staging column
    (e.g. organizations.account_id), or an audit column (billing_quarantine.resolved_by_id,
    billing_org_map.created_by_id).

    `migrations.upgrade` runs it on a database that has billing tables but no schema revision yet,
    with the tables of revision 0001 (`migrations.baseline`), before stamping it 0001. Rows written
    before simply lack the value, so the upgrade in place is an ADD COLUMN (docs/contract.md §4: a
    database made by an older version is upgraded). Idempotent: only missing columns are added. A
    missing column that is NOT NULL, a key or has a default is left alone: that is a migration's job.
    """
    inspector = sa.inspect(conn)
    quote = conn.dialect.identifier_preparer.quote
    for table in tables:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            in_place = column.nullable and not column.primary_key and column.server_default is None
            if column.name not in have and in_place:
                # DDL takes no bind parameters: the names and type come from our own schema, quoted
                # by the dialect, never from data.
                type_ = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {type_}"
                )
