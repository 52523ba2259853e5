"""Schema changes of the billing database as Alembic migrations (docs/contract.md §4).

    baseline.py      the tables as 0.1.0 made them, before Alembic: revision 0001, frozen
    env.py           Alembic's environment: runs the revisions on the connection `upgrade` hands it
    versions/        one module per revision, in order:
                     r0001_baseline           0001  the tables of `baseline`
                     r0002_tenants_money...   0002  tenant, money columns, billing_approvals,
                                                    billing_overrides, per-tenant keys
                     r0003_approvals_in_runs  0003  billing_changes.approval_id, action `created`;
                                                    staging: outcomes.approval_id, agreements
                     r0004_overrides_money... 0004  billing_changes.override_id; staging: the
                                                    outcomes' override and money, catalog, overrides
                     r0005_organizations_seen 0005  billing_organizations_seen (new organizations)
                     r0006_runs_per_tenant    0006  runs, ledger keys and staging per tenant
                     r0007_api_calls          0007  billing_api_calls (the shared rate-limit window)
                     r0008_decision_history   0008  billing_decisions (every decision kept) and the
                                                    triggers that refuse its UPDATE and DELETE
                     r0009_run_scope          0009  billing_runs.scope (an apply's scope)
                     r0010_unreadable_accounts 0010 staging: organizations.unreadable
                     r0011_catalog_items      0011  catalog_identifier on quarantine and ledger rows

`upgrade(conn)` brings a database to the newest revision, inside the caller's transaction
(`database.ensure_schema`, which every task and page runs once per engine). The revision a database
is at lives in its own version table, `billing_alembic_version`, never Alembic's default
`alembic_version`: the billing tables may share a database with Airflow's metadata, whose version
table that is.

A database without a version row is told apart by its tables:

- none of the billing tables: a new database. It gets the newest tables at once (`schema.py`) and is
  stamped at `HEAD`, Alembic's recipe for building a database from scratch: replaying every
  revision on empty tables gives the same shape (`tests/sync/store/test_migrations.py` builds both
  and compares them) at ten times the cost, paid by every new database and every test that makes one.
- some billing tables: made before the migrations (0.1.0). It is first caught up to revision 0001
  the way 0.1.0 upgraded itself (missing tables and indexes created, nullable columns an even older
  version lacked added in place, `schema._add_missing_columns`), then stamped 0001 and upgraded:
  rows are kept, the new columns take their defaults (`tenant` = 'default').

A database at a revision this code does not know (made by a newer version) is refused
(`SchemaVersionError`), never guessed at.

The next schema change: a new module in `versions/` (copy the newest; `revision` = the next number,
`down_revision` = the previous head), `HEAD` below set to it, `schema.py` changed to match. Column
changes on SQLite go through `op.batch_alter_table` (env.py sets render_as_batch). A revision
declares its own columns and never imports `schema`: it must keep doing what it did when `schema`
moves on. `tests/sync/store/test_migrations.py` checks that the newest revision builds exactly the
tables `schema.py` declares. Alembic can draft one from that difference:
`command.revision(migrations.config(conn), "message", autogenerate=True, rev_id="0003")` with a
connection to a database at head.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ...errors import PermanentError
from .. import schema
from . import baseline

if TYPE_CHECKING:
    from alembic.config import Config

VERSION_TABLE = "billing_alembic_version"
BASELINE = "0001"
HEAD = "0011"  # the newest revision in versions/ (a test checks they agree)
DIRECTORY = Path(__file__).resolve().parent


class SchemaVersionError(PermanentError, RuntimeError):
    """The billing database is at a revision this version of the code does not know."""


def upgrade(conn: Connection, revision: str = "head") -> None:
    """Bring the database on `conn` to `revision` (default: the newest), in `conn`'s transaction.

    Idempotent, and cheap when there is nothing to do: one query, and Alembic is not even imported.
    PostgreSQL: concurrent callers queue on an advisory lock (held to the end of the transaction);
    SQLite: the caller's BEGIN IMMEDIATE does that.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(schema._SCHEMA_LOCK_KEY)))
    current = current_revision(conn)
    if revision in ("head", HEAD):
        if current == HEAD:
            return
        if current is None and _is_new(conn):
            _create_at_head(conn)
            return
    from alembic import command

    cfg = config(conn)
    if current is None and _has_billing_tables(conn):
        _catch_up_to_baseline(conn)
        command.stamp(cfg, BASELINE)
    elif current is not None and current not in _known_revisions(cfg):
        raise SchemaVersionError(
            f"the billing database is at schema revision {current!r}, which this version of "
            f"huntress-cw-billing does not know (its newest is {HEAD!r}): it was upgraded by a newer "
            "version; run that version, or restore a backup made before the upgrade"
        )
    command.upgrade(cfg, revision)


def current_revision(conn: Connection) -> str | None:
    """The revision in the version table; None when the table is absent or empty."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    version = sa.table(VERSION_TABLE, sa.column("version_num", sa.Text))
    rows = conn.execute(sa.select(version.c.version_num)).scalars().all()
    if len(rows) > 1:  # Alembic keeps one row per head; this project's history has one head
        raise SchemaVersionError(f"the billing database has several schema revisions: {sorted(rows)}")
    return rows[0] if rows else None


def config(connection: Connection | None = None) -> Config:
    """An Alembic configuration for this package's script directory, running on `connection`."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(DIRECTORY))
    cfg.set_main_option("file_template", "r%%(rev)s_%%(slug)s")  # module names mypy accepts
    cfg.attributes["connection"] = connection
    return cfg


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """What Alembic compares (autogenerate): the billing tables, never Airflow's beside them."""
    return type_ != "table" or bool(name and name.startswith("billing_") and name != VERSION_TABLE)


def _has_billing_tables(conn: Connection) -> bool:
    return bool(set(sa.inspect(conn).get_table_names()) & set(baseline.metadata.tables))


def _is_new(conn: Connection) -> bool:
    """No table of any revision: neither 0.1.0's nor the newest."""
    billing = set(baseline.metadata.tables) | set(schema.metadata.tables)
    return not set(sa.inspect(conn).get_table_names()) & billing


# The version table as Alembic makes it (alembic.ddl.impl.DefaultImpl.version_table_impl).
_VERSION = sa.Table(
    VERSION_TABLE,
    sa.MetaData(),
    sa.Column("version_num", sa.String(32), nullable=False),
    sa.PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"),
)


def _create_at_head(conn: Connection) -> None:
    """A new database: the newest tables, and the version row `alembic stamp head` would write."""
    schema.metadata.create_all(conn)
    _VERSION.create(conn)
    conn.execute(_VERSION.insert().values(version_num=HEAD))


def _catch_up_to_baseline(conn: Connection) -> None:
    """What 0.1.0 did to a database on first use: the missing tables created, and the nullable
    columns a table gained since an even older version added in place; and, beyond that, the
    indexes of revision 0001 an existing table lacks (revision 0002 replaces some). Afterwards the
    database has what revision 0001 gives it."""
    baseline.metadata.create_all(conn, checkfirst=True)
    schema._add_missing_columns(conn, baseline.metadata.sorted_tables)
    for table in baseline.metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)


def _known_revisions(cfg: Config) -> set[str]:
    from alembic.script import ScriptDirectory

    return {script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()}
