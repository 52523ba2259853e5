"""Organizations of a Huntress account the key may not read (issue 22 §4).

- billing_stg_organizations.unreadable (text, nullable): why an organization's account could not be
  read (Huntress answered 403 to GET /v1/accounts/{account_id}/organizations); the organization is
  known only as its invoice lines name it, and its lines are held (unmapped_organization). Null for
  every organization Huntress listed, as for every row staged before this revision.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # ADD COLUMN of a nullable column without a default: no table rebuild on SQLite or PostgreSQL.
    op.add_column("billing_stg_organizations", sa.Column("unreadable", sa.Text(), nullable=True))


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
