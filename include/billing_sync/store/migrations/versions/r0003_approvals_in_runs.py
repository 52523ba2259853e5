"""Runs apply approvals (docs/contract.md §3, §4): the ledger names the approval, and records `created`.

- billing_changes.approval_id (integer, nullable): the billing_approvals row whose approved change
  or new addition the ledger row records; null on every other row (and on rows written before).
- billing_changes.action may be `created` (an approved new addition): the CHECK constraint
  ck_billing_changes_action is replaced by one that lists it.
- Staging: billing_stg_outcomes.approval_id, and the new billing_stg_agreements (the agreements a
  run read: what a person may add a missing addition to on the review page).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ACTIONS_0001 = "action IN ('updated', 'unchanged', 'planned', 'failed')"
_ACTIONS_0003 = "action IN ('updated', 'unchanged', 'planned', 'failed', 'created')"
_CHECK = "ck_billing_changes_action"


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    _changes()
    with op.batch_alter_table("billing_stg_outcomes") as batch:
        batch.add_column(sa.Column("approval_id", sa.BigInteger()))
    op.create_table(
        "billing_stg_agreements",
        sa.Column("run_id", sa.Text(), primary_key=True),
        sa.Column("agreement_id", sa.BigInteger()),
        sa.Column("company_id", sa.BigInteger()),
        sa.Column("name", sa.Text()),
        sa.Column("type", sa.Text()),
        sa.Column("status", sa.Text()),
        sa.Column("cancelled", sa.Boolean()),
        sa.Column("start_date", _utc()),
        sa.Column("end_date", _utc()),
        sa.Column("row_no", sa.Integer(), primary_key=True, autoincrement=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")


def _changes() -> None:
    """The new column, and the CHECK constraint replaced.

    PostgreSQL changes the table in place (a database made before the migrations may lack the
    constraint, so it is dropped only when there). SQLite cannot alter a constraint: batch mode
    copies the table, from its 0002 shape given here rather than reflected, so exactly the old
    constraint is left behind and the indexes come along.
    """
    column = sa.Column("approval_id", sa.Integer())
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.add_column("billing_changes", column)
        names = {c["name"] for c in sa.inspect(bind).get_check_constraints("billing_changes")}
        if _CHECK in names:
            op.drop_constraint(_CHECK, "billing_changes", type_="check")
        op.create_check_constraint(_CHECK, "billing_changes", _ACTIONS_0003)
        return
    shape_0002 = sa.Table(
        "billing_changes",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Text(), nullable=False),
        sa.Column("billing_date", sa.Date(), nullable=False),
        sa.Column("cw_company_id", sa.BigInteger()),
        sa.Column("agreement_id", sa.BigInteger()),
        sa.Column("addition_id", sa.BigInteger()),
        sa.Column("product", sa.Text()),
        sa.Column("huntress_quantity", sa.BigInteger()),
        sa.Column("previous_quantity", sa.Double()),
        sa.Column("new_quantity", sa.Double()),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("applied_at", _utc(), nullable=False),
        sa.Column("sync_key", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False, server_default="default"),
        sa.Column("unit_price", sa.Numeric()),
        sa.Column("monthly_amount_delta", sa.Numeric()),
        sa.UniqueConstraint("run_id", "sync_key", name="uq_billing_changes_run_key"),
        sa.CheckConstraint(_ACTIONS_0001, name=_CHECK),
        sa.Index("ix_billing_changes_tenant_date", "tenant", "billing_date"),
        sa.Index("ix_billing_changes_company", "cw_company_id"),
    )
    with op.batch_alter_table("billing_changes", copy_from=shape_0002, recreate="always") as batch:
        batch.add_column(column)
        batch.drop_constraint(_CHECK, type_="check")
        batch.create_check_constraint(_CHECK, _ACTIONS_0003)
