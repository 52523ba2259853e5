"""A run's scope (docs/contract.md §4 `billing_runs.scope`): what an apply of the desk syncs.

- billing_runs.scope (JSON text, nullable): null for a full run of the billing date; for a scoped run
  (the apply DAG, docs/contract.md §1) its conf `{"billing_date", "companies", "organizations"}`.

A database upgraded to this revision has every existing run as a full run (scope null), which each
of them was.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column without a default: no table rebuild on SQLite or PostgreSQL.
    op.add_column("billing_runs", sa.Column("scope", sa.Text(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
