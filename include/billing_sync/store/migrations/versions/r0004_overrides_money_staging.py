"""Overrides and money in the runs (docs/contract.md §3, §4).

After 0003 (approvals), whose SQLite copy of billing_changes starts from the 0002 shape: this
revision only adds columns.

- billing_changes.override_id (nullable): the billing_overrides row that decided the ledger row's
  quantity. The ledger has no free-text column; the id names the rule, its quantity and who set it
  (the override is retired, never deleted, so the id always resolves).
- Staging (extension, §4): billing_stg_outcomes gains the override and the money of each key
  (override_id, override, unit_price, catalog_price, monthly_amount_delta, amount_at_stake; the
  amounts as Decimal text); new billing_stg_catalog (the mapped catalog items as read, with their
  price) and billing_stg_overrides (the overrides a run applied).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_OUTCOME_COLUMNS = (
    ("override_id", sa.BigInteger),
    ("override", sa.Text),
    ("unit_price", sa.Text),
    ("catalog_price", sa.Text),
    ("monthly_amount_delta", sa.Text),
    ("amount_at_stake", sa.Text),
)


def upgrade() -> None:
    with op.batch_alter_table("billing_changes") as batch:
        batch.add_column(sa.Column("override_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("billing_stg_outcomes") as batch:
        for name, type_ in _OUTCOME_COLUMNS:
            batch.add_column(sa.Column(name, type_(), nullable=True))
    _staging(
        "catalog",
        sa.Column("catalog_item_id", sa.BigInteger()),
        sa.Column("identifier", sa.Text()),
        sa.Column("description", sa.Text()),
        sa.Column("price", sa.Double()),
        sa.Column("inactive", sa.Boolean()),
    )
    _staging(
        "overrides",
        sa.Column("override_id", sa.BigInteger()),
        sa.Column("company_id", sa.BigInteger()),
        sa.Column("product", sa.Text()),
        sa.Column("rule", sa.Text()),
        sa.Column("quantity", sa.Double()),
        sa.Column("created_by", sa.Text()),
        sa.Column("note", sa.Text()),
    )


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")


def _staging(name: str, *columns: sa.Column[object]) -> None:
    """A staging table as `schema._staging` declares one: keyed by (run_id, row_no)."""
    op.create_table(
        f"billing_stg_{name}",
        sa.Column("run_id", sa.Text(), nullable=False),
        *columns,
        sa.Column("row_no", sa.Integer(), nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("run_id", "row_no"),
    )
