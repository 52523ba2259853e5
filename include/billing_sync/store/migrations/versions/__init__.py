"""The revisions, one module each, loaded by Alembic (not imported by the package)."""
