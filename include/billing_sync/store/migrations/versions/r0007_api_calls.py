"""The shared rate-limit window (docs/contract.md §1 Tenants, §4): recent request starts per account.

- New table billing_api_calls: the wall-clock starts (Unix time in seconds, double precision) of the
  requests made to an API account (`api` "huntress", `account` the Airflow connection id that names
  it) within its last window, and how many started at that very stamp (`calls`). Keyed by (api,
  account, started_epoch). Every task that calls the account reads it before its first request and
  merges its own starts in afterwards, so a task never starts blind to the window its predecessors,
  of any tenant of the account, spent.

A database upgraded to this revision has no rows in it: its first Huntress task starts as before,
from an empty window.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "billing_api_calls",
        sa.Column("api", sa.Text(), nullable=False),
        sa.Column("account", sa.Text(), nullable=False),
        sa.Column("started_epoch", sa.Double(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False, server_default="1"),
        sa.PrimaryKeyConstraint("api", "account", "started_epoch", name="pk_billing_api_calls"),
    )


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
