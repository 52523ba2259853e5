"""Engines and transactions for the billing database, and the schema made ready (migrated) on first use."""

from __future__ import annotations

import importlib.util
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from . import migrations

SQLITE_BUSY_TIMEOUT_S = 60
_WRITE_OPTION = "billing_sync_write"


def make_engine(url: str) -> Engine:
    """An engine for the billing database.

    SQLite: WAL (readers never block the writer), a busy timeout, and write transactions opened
    with BEGIN IMMEDIATE, so two tasks queue for the write lock instead of failing with
    "database is locked" when a read transaction tries to upgrade. PostgreSQL: pool_pre_ping, since
    Airflow workers hold engines across idle periods the server may cut.
    """
    parsed = sa.engine.make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername=_postgres_driver())
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    sa.event.listen(engine, "connect", _sqlite_on_connect)
    sa.event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _postgres_driver() -> str:
    # Airflow renders a postgres connection as "postgres://", and SQLAlchemy 2.1 maps a bare
    # "postgresql://" to psycopg 3; the pinned driver is psycopg2, so use it unless psycopg is there.
    return "postgresql" if importlib.util.find_spec("psycopg") else "postgresql+psycopg2"


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling skips BEGIN for SELECT and DDL; take it over (the
    # recipe in SQLAlchemy's SQLite docs) so every transaction is a real one.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough with WAL, much faster
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


@contextmanager
def _writing(engine: Engine) -> Iterator[Connection]:
    _ready(engine)
    with _transaction(engine) as conn:
        yield conn


@contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    _ready(engine)
    with engine.connect() as conn:
        yield conn


_READY: weakref.WeakSet[Engine] = weakref.WeakSet()


def _ready(engine: Engine) -> None:
    if engine not in _READY:
        ensure_schema(engine)


def ensure_schema(engine: Engine) -> None:
    """Bring the database to the newest schema revision (`migrations.upgrade`): a new database gets
    every table, one made by an older version is upgraded in place, rows and all. Idempotent (at
    the newest revision it is one query); safe when processes race.

    PostgreSQL: migrators queue on an advisory lock (CREATE TABLE races fail on pg_type even with
    IF NOT EXISTS). SQLite: BEGIN IMMEDIATE makes check-and-migrate atomic. A second attempt
    covers engines not built by `make_engine`, where the check and the change can still interleave.
    """
    try:
        _create_all(engine)
    except sa.exc.DBAPIError:
        _create_all(engine)  # lost a race: the re-check now sees the winner's tables
    _READY.add(engine)


def _create_all(engine: Engine) -> None:
    with _transaction(engine) as conn:
        migrations.upgrade(conn)


def engine_for(url: str) -> Engine:
    """An engine for the billing database at `url`, its schema made ready (what every task needs)."""
    engine = make_engine(url)
    ensure_schema(engine)
    return engine
