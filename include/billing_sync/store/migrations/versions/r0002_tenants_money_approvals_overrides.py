"""Tenants, money, approvals and overrides (docs/contract.md §4).

- `tenant` (text, NOT NULL, default 'default': every existing row belongs to the single
  installation) on billing_quarantine, billing_changes, billing_runs and billing_org_map. The
  staging tables have none: their rows belong to a run, and the run's row names its tenant.
- Keys and indexes per tenant: billing_org_map's key becomes (tenant, huntress_organization_id);
  the open-quarantine unique index and the billing-date indexes lead with tenant.
- Money, nullable: billing_changes.unit_price and monthly_amount_delta,
  billing_quarantine.amount_at_stake.
- New tables billing_approvals and billing_overrides.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_OPEN = sa.text("status = 'open'")
_PENDING = sa.text("status = 'pending'")
_ACTIVE = sa.text("active")


def _tenant() -> sa.Column[str]:
    return sa.Column("tenant", sa.Text(), nullable=False, server_default="default")


def _money(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.Numeric(), nullable=True)


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    _quarantine()
    _changes()
    _runs()
    _org_map()
    _approvals()
    _overrides()


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")


def _quarantine() -> None:
    op.drop_index("ix_billing_quarantine_date_status", table_name="billing_quarantine")
    op.drop_index("uq_billing_quarantine_open", table_name="billing_quarantine")
    with op.batch_alter_table("billing_quarantine") as batch:
        batch.add_column(_tenant())
        batch.add_column(_money("amount_at_stake"))
    op.create_index(
        "ix_billing_quarantine_tenant_date_status",
        "billing_quarantine",
        ["tenant", "billing_date", "status"],
    )
    op.create_index(
        "uq_billing_quarantine_open",
        "billing_quarantine",
        ["tenant", "billing_date", "sync_key", "reason_code"],
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    )


def _changes() -> None:
    op.drop_index("ix_billing_changes_billing_date", table_name="billing_changes")
    with op.batch_alter_table("billing_changes") as batch:
        batch.add_column(_tenant())
        batch.add_column(_money("unit_price"))
        batch.add_column(_money("monthly_amount_delta"))
    op.create_index("ix_billing_changes_tenant_date", "billing_changes", ["tenant", "billing_date"])


def _runs() -> None:
    op.drop_index("ix_billing_runs_billing_date", table_name="billing_runs")
    with op.batch_alter_table("billing_runs") as batch:
        batch.add_column(_tenant())
    op.create_index("ix_billing_runs_tenant_date", "billing_runs", ["tenant", "billing_date"])


def _org_map() -> None:
    """The key becomes (tenant, huntress_organization_id): one mapping per organization per tenant.

    PostgreSQL changes the primary key in place (grants other tools hold on the table stay). SQLite
    cannot alter a key: batch mode copies the table, from its 0001 shape given here rather than
    reflected, so the old single-column key is not carried over beside the new one.
    """
    key = ["tenant", "huntress_organization_id"]
    if op.get_bind().dialect.name != "sqlite":
        op.add_column("billing_org_map", _tenant())
        old = sa.inspect(op.get_bind()).get_pk_constraint("billing_org_map")["name"]
        if old:  # billing_org_map_pkey, as PostgreSQL names the key 0001 declares
            op.drop_constraint(old, "billing_org_map", type_="primary")
        op.create_primary_key("pk_billing_org_map", "billing_org_map", key)
        return
    shape_0001 = sa.Table(
        "billing_org_map",
        sa.MetaData(),
        sa.Column("huntress_organization_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("cw_company_id", sa.BigInteger(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("created_by", sa.Text()),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("created_by_id", sa.Text()),
    )
    with op.batch_alter_table("billing_org_map", copy_from=shape_0001, recreate="always") as batch:
        batch.add_column(_tenant())
        batch.create_primary_key("pk_billing_org_map", key)


def _approvals() -> None:
    op.create_table(
        "billing_approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _tenant(),
        sa.Column("billing_date", sa.Date(), nullable=False),
        sa.Column("sync_key", sa.Text(), nullable=False),
        sa.Column("cw_company_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("addition_id", sa.BigInteger()),
        sa.Column("agreement_id", sa.BigInteger()),
        sa.Column("from_quantity", sa.Double()),
        sa.Column("to_quantity", sa.Double(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("approved_by", sa.Text(), nullable=False),
        sa.Column("approved_by_id", sa.Text()),
        sa.Column("approved_at", _utc(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("applied_run_id", sa.Text()),
        sa.Column("applied_at", _utc()),
        sa.CheckConstraint("kind IN ('change', 'create_addition')", name="ck_billing_approvals_kind"),
        sa.CheckConstraint(
            "status IN ('pending', 'applied', 'stale', 'revoked')", name="ck_billing_approvals_status"
        ),
    )
    op.create_index(
        "ix_billing_approvals_tenant_date_status",
        "billing_approvals",
        ["tenant", "billing_date", "status"],
    )
    op.create_index(
        "uq_billing_approvals_pending",
        "billing_approvals",
        ["tenant", "billing_date", "sync_key"],
        unique=True,
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def _overrides() -> None:
    op.create_table(
        "billing_overrides",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        _tenant(),
        sa.Column("cw_company_id", sa.BigInteger(), nullable=False),
        sa.Column("product", sa.Text(), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Double()),
        sa.Column("note", sa.Text()),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("created_by_id", sa.Text()),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.CheckConstraint("rule IN ('minimum', 'fixed', 'exclude')", name="ck_billing_overrides_rule"),
    )
    op.create_index(
        "uq_billing_overrides_active",
        "billing_overrides",
        ["tenant", "cw_company_id", "product"],
        unique=True,
        sqlite_where=_ACTIVE,
        postgresql_where=_ACTIVE,
    )
