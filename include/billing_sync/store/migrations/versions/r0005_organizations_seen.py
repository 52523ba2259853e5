"""New organizations (docs/contract.md §1, §4; issue 11 §7): the organizations seen on invoices.

- New table billing_organizations_seen, one row per tenant and Huntress organization that a push
  run found on its invoice: the organization's name as that run read it, `first_billing_date` (the
  earliest billing date of an invoice a push run recorded it on: a push of an older date moves it
  earlier), `first_run_id` and `first_seen_at` (the run that recorded it first, and when; never
  changed). Keyed by (tenant, huntress_organization_id); indexed by (tenant, first_run_id), the
  organizations a run recorded first.

A database upgraded to this revision has no rows in it: its next push run finds every organization
of its invoice new, as the first run of a new installation does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_organizations_seen",
        sa.Column("tenant", sa.Text(), nullable=False, server_default="default"),
        sa.Column("huntress_organization_id", sa.BigInteger(), nullable=False, autoincrement=False),
        sa.Column("name", sa.Text()),
        sa.Column("first_billing_date", sa.Date(), nullable=False),
        sa.Column("first_run_id", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "huntress_organization_id", name="pk_billing_organizations_seen"),
    )
    op.create_index(
        "ix_billing_organizations_seen_first_run",
        "billing_organizations_seen",
        ["tenant", "first_run_id"],
    )


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
