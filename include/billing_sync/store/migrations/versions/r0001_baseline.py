"""Baseline: the billing database as 0.1.0 made it, before Alembic.

Its tables: the quarantine, the ledger, the runs, the organization map and staging.

A database made by 0.1.0 is not run through this revision: it is caught up to it and stamped
(`billing_sync.store.migrations.upgrade`).
"""

from __future__ import annotations

from alembic import op

from billing_sync.store.migrations import baseline

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    baseline.metadata.create_all(op.get_bind(), checkfirst=False)


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
