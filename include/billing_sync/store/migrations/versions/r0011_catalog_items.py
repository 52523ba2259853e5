"""Each quarantine and ledger row names its catalog item: a product may have several.

A product is kept in step on several catalog items (docs/contract.md, Variable `products`).

- billing_quarantine.catalog_identifier, billing_changes.catalog_identifier (text, nullable): the
  ConnectWise catalog identifier of the row's key. A product mapped to one item keeps its keys
  (`company:<id>:<product>`); one mapped to several has a key per item, and the rows of those keys
  differ only by this column and the key's tail.

A database upgraded to this revision leaves the column null on existing rows: written when each
product had one item, which the run's recorded settings (billing_runs.settings) name. Nothing is
guessed into them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column without a default: no table rebuild on SQLite or PostgreSQL.
    op.add_column("billing_quarantine", sa.Column("catalog_identifier", sa.Text(), nullable=True))
    op.add_column("billing_changes", sa.Column("catalog_identifier", sa.Text(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
