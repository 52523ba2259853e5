"""${message}

Revision ${up_revision}, after ${down_revision | comma,n}. Declares its own columns: never import
billing_sync.store.schema here (see billing_sync.store.migrations).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = None
depends_on = None


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
