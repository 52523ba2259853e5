"""Alembic's environment for the billing database.

Runs the revisions on the connection `migrations.upgrade` puts in the configuration's attributes,
inside that connection's transaction (Alembic then opens none of its own). The version table is
`billing_alembic_version`, and batch mode is on: SQLite changes constraints by copying the table.
"""

from __future__ import annotations

from alembic import context

from billing_sync.store import schema
from billing_sync.store.migrations import VERSION_TABLE, include_name

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the billing database's migrations run on a connection: use billing_sync.store.ensure_schema "
        "(or migrations.upgrade / migrations.config(connection)), not the alembic command line alone"
    )
context.configure(
    connection=connection,
    target_metadata=schema.metadata,
    version_table=VERSION_TABLE,
    render_as_batch=True,
    include_name=include_name,
)
with context.begin_transaction():
    context.run_migrations()
