"""Runs per tenant (docs/contract.md §1 Tenants, §4): a run is named by (tenant, run_id).

Airflow gives every tenant's DAG the same run ids (`scheduled__2026-12-01T00:00:00+00:00`), so a
run id alone no longer names one run:

- billing_runs: primary key (run_id) becomes (tenant, run_id);
- billing_changes: the unique key (run_id, sync_key) becomes (tenant, run_id, sync_key), same name;
- every staging table (billing_stg_*): a `tenant` column (NOT NULL, 'default' for the rows already
  there) and the primary key (run_id, row_no) becomes (tenant, run_id, row_no);
- billing_stg_outcomes.target (bigint, nullable): the quantity the run aimed for (Huntress's count
  or an override's), which an approval of an override-decided key names; null in rows before.

Every row is kept. PostgreSQL changes the keys in place. SQLite cannot alter a key: each table is
rebuilt from its reflected shape (columns, named CHECK constraints and indexes; none of these
tables has a partial index) with the new key, its rows copied across, then renamed into place.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

STAGING_PREFIX = "billing_stg_"
CHANGES_KEY = "uq_billing_changes_run_key"


def _tenant_column() -> sa.Column[str]:
    return sa.Column("tenant", sa.Text(), nullable=False, server_default="default")


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("billing_stg_outcomes", sa.Column("target", sa.BigInteger()))
    staging = sorted(t for t in sa.inspect(bind).get_table_names() if t.startswith(STAGING_PREFIX))
    if bind.dialect.name == "sqlite":
        for table in staging:
            _rebuild_sqlite(table, ("tenant", "run_id", "row_no"), add_tenant=True)
        _rebuild_sqlite("billing_runs", ("tenant", "run_id"))
        _rebuild_sqlite("billing_changes", None, unique=("tenant", "run_id", "sync_key"))
        return
    for table in staging:
        op.add_column(table, _tenant_column())
        _rekey(table, ["tenant", "run_id", "row_no"])
    _rekey("billing_runs", ["tenant", "run_id"])
    for uq in _run_keys(bind):  # named CHANGES_KEY since 0001; unnamed in older databases
        op.drop_constraint(uq, "billing_changes", type_="unique")
    op.create_unique_constraint(CHANGES_KEY, "billing_changes", ["tenant", "run_id", "sync_key"])


def downgrade() -> None:
    raise NotImplementedError("the billing database is never downgraded: restore a backup")


def _run_keys(bind: sa.Connection) -> list[str]:
    """The unique constraints of billing_changes on (run_id, sync_key)."""
    return [
        str(uq["name"])  # PostgreSQL names every constraint, unnamed ones included
        for uq in sa.inspect(bind).get_unique_constraints("billing_changes")
        if set(uq["column_names"]) == {"run_id", "sync_key"}
    ]


def _rekey(table: str, columns: list[str]) -> None:
    name = sa.inspect(op.get_bind()).get_pk_constraint(table)["name"] or f"{table}_pkey"
    op.drop_constraint(name, table, type_="primary")
    op.create_primary_key(name, table, columns)


def _rebuild_sqlite(
    name: str, key: tuple[str, ...] | None, *, add_tenant: bool = False, unique: tuple[str, ...] | None = None
) -> None:
    """Rebuild one SQLite table with primary key `key` (None: keep it) and, for billing_changes, the
    unique key CHANGES_KEY on `unique`; the tenant column added last when `add_tenant`."""
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    old = sa.Table(name, sa.MetaData(), autoload_with=bind)
    pk = key or tuple(c.name for c in old.primary_key.columns)
    columns = [
        sa.Column(
            c.name,
            c.type,
            nullable=c.nullable and c.name not in pk,
            server_default=c.server_default,
            autoincrement=c.autoincrement if key is None else False,
        )
        for c in old.columns
    ]
    if add_tenant:
        columns.append(_tenant_column())
    constraints: list[sa.Constraint] = [sa.PrimaryKeyConstraint(*pk)]
    constraints += [
        sa.CheckConstraint(c.sqltext, name=c.name)
        for c in old.constraints
        if isinstance(c, sa.CheckConstraint) and c.name
    ]
    for uq in inspector.get_unique_constraints(name):
        if unique is not None and set(uq["column_names"]) == {"run_id", "sync_key"}:
            continue
        constraints.append(sa.UniqueConstraint(*uq["column_names"], name=uq["name"]))
    if unique is not None:
        constraints.append(sa.UniqueConstraint(*unique, name=CHANGES_KEY))
    new = sa.Table(f"_{name}_0006", sa.MetaData(), *columns, *constraints)
    new.create(bind)
    op.execute(new.insert().from_select([c.name for c in old.columns], sa.select(*old.columns)))
    indexes = inspector.get_indexes(name)
    op.drop_table(name)
    op.rename_table(new.name, name)
    for index in indexes:
        on = [str(c) for c in index["column_names"]]  # no expression indexes on these tables
        op.create_index(index["name"], name, on, unique=bool(index["unique"]))
