"""The decision history (docs/contract.md §4 `billing_decisions`): every decision a person made, kept.

- New table billing_decisions (docs/contract.md §4): one row per decision, with the tenant, when
  (`at`, UTC), who (`actor_id`, `actor_name`), the `kind` (dismiss, resolve, reopen, map, unmap,
  approve, revoke, create, override_add, override_end, settings; apply, reserved for the desk's
  Apply-now), the `subject` (quarantine, mapping, approval, override, settings, run) and its
  `subject_id`, the subject before and after (JSON text) and the person's note; and, as extensions,
  the subject's keys (quarantine row, sync key, organization, company, product, approval, override)
  indexed for a row's, a company's and an organization's history.
- Triggers that refuse every UPDATE and DELETE of it (PostgreSQL: TRUNCATE too), so nothing, the
  application included, rewrites or removes a decision once it is recorded.

A database upgraded to this revision has no entries: the decisions made before it are what the
other tables' own columns still say (who dismissed a row, who created a mapping).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Spelled out here, not imported from schema.py: a revision keeps what it shipped with.
KINDS = (
    "dismiss",
    "resolve",
    "reopen",
    "map",
    "unmap",
    "approve",
    "revoke",
    "create",
    "override_add",
    "override_end",
    "settings",
    "apply",
)
SUBJECTS = ("quarantine", "mapping", "approval", "override", "settings", "run")
# The very statements schema.DECISIONS_TRIGGERS fires for a new database (a test compares them).
TRIGGERS = {
    "sqlite": (
        "CREATE TRIGGER billing_decisions_no_update BEFORE UPDATE ON billing_decisions "
        "BEGIN SELECT RAISE(ABORT, 'billing_decisions is append-only, UPDATE refused'); END",
        "CREATE TRIGGER billing_decisions_no_delete BEFORE DELETE ON billing_decisions "
        "BEGIN SELECT RAISE(ABORT, 'billing_decisions is append-only, DELETE refused'); END",
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION billing_decisions_append_only() RETURNS trigger LANGUAGE plpgsql "
        "AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'integrity_constraint_violation', "
        "MESSAGE = 'billing_decisions is append-only, ' || TG_OP || ' refused'; END $$",
        "CREATE TRIGGER billing_decisions_append_only BEFORE UPDATE OR DELETE ON billing_decisions "
        "FOR EACH ROW EXECUTE FUNCTION billing_decisions_append_only()",
        "CREATE TRIGGER billing_decisions_no_truncate BEFORE TRUNCATE ON billing_decisions "
        "FOR EACH STATEMENT EXECUTE FUNCTION billing_decisions_append_only()",
    ),
}


def upgrade() -> None:
    kinds = ", ".join(f"'{k}'" for k in KINDS)
    subjects = ", ".join(f"'{s}'" for s in SUBJECTS)
    op.create_table(
        "billing_decisions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.Text()),
        sa.Column("actor_name", sa.Text()),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("before", sa.Text()),
        sa.Column("after", sa.Text()),
        sa.Column("note", sa.Text()),
        sa.Column("quarantine_id", sa.Integer()),
        sa.Column("sync_key", sa.Text()),
        sa.Column("huntress_organization_id", sa.BigInteger()),
        sa.Column("cw_company_id", sa.BigInteger()),
        sa.Column("product", sa.Text()),
        sa.Column("approval_id", sa.Integer()),
        sa.Column("override_id", sa.Integer()),
        sa.CheckConstraint(f"kind IN ({kinds})", name="ck_billing_decisions_kind"),
        sa.CheckConstraint(f"subject IN ({subjects})", name="ck_billing_decisions_subject"),
    )
    op.create_index("ix_billing_decisions_tenant_row", "billing_decisions", ["tenant", "quarantine_id"])
    op.create_index("ix_billing_decisions_tenant_company", "billing_decisions", ["tenant", "cw_company_id"])
    op.create_index(
        "ix_billing_decisions_tenant_org", "billing_decisions", ["tenant", "huntress_organization_id"]
    )
    for statement in TRIGGERS.get(op.get_bind().dialect.name, ()):
        op.execute(statement)


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")
