"""The billing database: quarantine, ledger, runs, organization map and per-run staging of frames.

SQLAlchemy Core only, and the same on SQLite and PostgreSQL. Nothing here imports Airflow: the DAG
resolves the URL (connection `billing_sync_db`, else `default_url(AIRFLOW_HOME)`) and passes it in.
Tables are created on first use of an engine. Every value travels as a bound parameter.

Row dicts returned by the query functions use the column names of CONTRACTS.md §4; timestamps are
timezone-aware UTC and JSON columns come back decoded.
"""

from __future__ import annotations

import importlib.util
import io
import json
import math
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from . import frames
from .reconcile import REASON_CODES as _RECONCILE_REASON_CODES

QUARANTINE_STATUSES = ("open", "resolved", "dismissed")
ACTIONS = ("updated", "unchanged", "planned", "failed")
MODES = ("push", "dry_run", "report_only")
# One list of reason codes for the whole package: the contract's nine and its extensions.
REASON_CODES = tuple(_RECONCILE_REASON_CODES)

DEFAULT_FILENAME = "billing_sync.db"
SQLITE_BUSY_TIMEOUT_S = 60
STAGING_PREFIX = "billing_stg_"
ROW_COLUMN = "row_no"  # staging: position of the row in the frame, so reads keep insertion order
_IN_CHUNK = 500  # keys per IN (...) list: well under SQLite's bound-variable limit
_SCHEMA_LOCK_KEY = 0x62696C6C5F737463  # PostgreSQL advisory lock serializing CREATE TABLE
_WRITE_OPTION = "billing_sync_write"


class QuarantineNotFound(LookupError):
    """No quarantine row has the given id."""


class RunNotFound(LookupError):
    """No billing run has the given run id."""


# --- column types -------------------------------------------------------------------------------


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in and out.

    SQLite stores no offset, so values are written as UTC wall time and read back as UTC; naive
    input is taken to be UTC already.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class JSONText(sa.TypeDecorator[Any]):
    """JSON stored as TEXT (the contract says "JSON text"), so any tool can read it as a string."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(_jsonable(value), ensure_ascii=False, sort_keys=True, allow_nan=False)

    def process_result_value(self, value: str | None, dialect: sa.Dialect) -> Any:
        return None if value is None else json.loads(value)


def _jsonable(value: Any) -> Any:
    """Strict JSON for other tools: NA and NaN/inf become null, numpy and dates become plain values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    value = _clean(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _sql_type(dtype: str) -> sa.types.TypeEngine[Any]:
    """SQL type of a staging column from its pandas dtype in `frames.SCHEMAS`."""
    if dtype == "Int64":
        return sa.BigInteger()
    if dtype == "string":
        return sa.Text()
    if dtype == "Float64":
        return sa.Double()
    if dtype == "boolean":
        return sa.Boolean()
    if dtype.startswith("datetime64"):
        return sa.DateTime(timezone=True)
    raise ValueError(f"no SQL type for pandas dtype {dtype!r}: add it to store._sql_type")


# --- tables ---------------------------------------------------------------------------------------

metadata = sa.MetaData()

_OPEN = sa.text("status = 'open'")


def _one_of(column: str, values: Sequence[str], table: str) -> sa.CheckConstraint:
    """CHECK (column IN (...)) from the tuple above that the write functions also check against."""
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=f"ck_{table}_{column}")


quarantine = sa.Table(
    "billing_quarantine",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("billing_date", sa.Date, nullable=False),
    sa.Column("huntress_organization_id", sa.BigInteger),
    sa.Column("huntress_organization_name", sa.Text),
    sa.Column("cw_company_id", sa.BigInteger),
    sa.Column("product", sa.Text),
    sa.Column("reason_code", sa.Text, nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("payload", JSONText),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("first_seen_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("resolved_at", UTCDateTime),
    sa.Column("resolved_by", sa.Text),
    sa.Column("note", sa.Text),
    sa.Column("sync_key", sa.Text, nullable=False),
    _one_of("status", QUARANTINE_STATUSES, "billing_quarantine"),
    sa.Index("ix_billing_quarantine_sync_key", "sync_key"),
    sa.Index("ix_billing_quarantine_date_status", "billing_date", "status"),
    # The database itself guarantees "at most one open row per billing date, key and reason".
    sa.Index(
        "uq_billing_quarantine_open",
        "billing_date",
        "sync_key",
        "reason_code",
        unique=True,
        sqlite_where=_OPEN,
        postgresql_where=_OPEN,
    ),
)

changes = sa.Table(
    "billing_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("billing_date", sa.Date, nullable=False),
    sa.Column("cw_company_id", sa.BigInteger),
    sa.Column("agreement_id", sa.BigInteger),
    sa.Column("addition_id", sa.BigInteger),
    sa.Column("product", sa.Text),
    sa.Column("huntress_quantity", sa.BigInteger),
    sa.Column("previous_quantity", sa.Double),  # ConnectWise quantities are decimals
    sa.Column("new_quantity", sa.Double),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("applied_at", UTCDateTime, nullable=False),
    sa.Column("sync_key", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "sync_key", name="uq_billing_changes_run_key"),
    _one_of("action", ACTIONS, "billing_changes"),
    sa.Index("ix_billing_changes_billing_date", "billing_date"),
    sa.Index("ix_billing_changes_company", "cw_company_id"),
)

runs = sa.Table(
    "billing_runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("billing_date", sa.Date, nullable=False),
    sa.Column("invoice_id", sa.BigInteger),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("counts", JSONText),
    sa.Column("checks", JSONText),
    sa.Column("report_path", sa.Text),
    sa.Column("settings", JSONText),
    _one_of("mode", MODES, "billing_runs"),
    sa.Index("ix_billing_runs_billing_date", "billing_date"),
    sa.Index("ix_billing_runs_started_at", "started_at"),
)

org_map = sa.Table(
    "billing_org_map",
    metadata,
    sa.Column("huntress_organization_id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("cw_company_id", sa.BigInteger, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("created_by", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


def _staging(name: str, schema: Mapping[str, str]) -> sa.Table:
    if ROW_COLUMN in schema or "run_id" in schema:
        raise ValueError(f"frame {name!r} uses a column name reserved by staging")
    # Primary key (run_id, row_no): its index serves "this run's rows, in order" and the delete.
    return sa.Table(
        f"{STAGING_PREFIX}{name}",
        metadata,
        sa.Column("run_id", sa.Text, primary_key=True),
        *(sa.Column(col, _sql_type(dtype)) for col, dtype in schema.items()),
        sa.Column(ROW_COLUMN, sa.Integer, primary_key=True, autoincrement=False),
    )


STAGING: dict[str, sa.Table] = {name: _staging(name, schema) for name, schema in frames.SCHEMAS.items()}


def staging_table(name: str) -> sa.Table:
    try:
        return STAGING[name]
    except KeyError:
        raise ValueError(f"unknown frame {name!r}; known: {sorted(STAGING)}") from None


# --- engine and transactions ----------------------------------------------------------------------


def default_url(airflow_home: str | Path) -> str:
    return f"sqlite:///{Path(airflow_home).expanduser() / DEFAULT_FILENAME}"


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
    """Create whatever tables and indexes are missing. Idempotent; safe when processes race.

    PostgreSQL: creators queue on an advisory lock (CREATE TABLE races fail on pg_type even with
    IF NOT EXISTS). SQLite: BEGIN IMMEDIATE makes check-and-create atomic. A second attempt
    covers engines not built by `make_engine`, where the check and the create can still interleave.
    """
    try:
        _create_all(engine)
    except sa.exc.DBAPIError:
        _create_all(engine)  # lost a race: the re-check now sees the winner's tables
    _READY.add(engine)


def _create_all(engine: Engine) -> None:
    with _transaction(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK_KEY)))
        metadata.create_all(conn, checkfirst=True)
        _add_staging_columns(conn)


def _add_staging_columns(conn: Connection) -> None:
    """Columns a frame gained since its staging table was made (e.g. organizations.account_id).

    Staging columns are all nullable and rows of older runs simply lack the new value, so the
    upgrade in place is an ADD COLUMN (CONTRACTS §4: a database made by an older version is upgraded).
    """
    inspector = sa.inspect(conn)
    for table in STAGING.values():
        have = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                type_ = column.type.compile(dialect=conn.dialect)
                conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN "{column.name}" {type_}')


# --- value helpers --------------------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _as_date(value: date | datetime | str) -> date:
    """A billing date from a date, a (pendulum) datetime or ISO text; aware datetimes count in UTC."""
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return _as_date(datetime.fromisoformat(value))
    raise TypeError(f"billing_date must be a date, datetime or ISO string, not {type(value).__name__}")


def _clean(value: Any) -> Any:
    """Plain Python for the driver: pandas/numpy NA → None, numpy scalars → Python scalars."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        return _clean(value.item())
    return value


def _required_text(row: Mapping[str, Any], field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} is required (non-empty text), got {value!r}")
    return value


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows(result: sa.CursorResult[Any]) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in result]


def _upsert(
    conn: Connection, table: sa.Table, keys: Sequence[str], rows: list[dict[str, Any]], update: Sequence[str]
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, batched. Both dialects spell it the same way."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    conn.execute(stmt, rows)


# --- staging frames -------------------------------------------------------------------------------


def write_frame(engine: Engine, run_id: str, name: str, df: pd.DataFrame) -> int:
    """Replace this run's rows of frame `name` with `df` (one transaction). Returns the row count.

    Columns missing from `df` are an error rather than silently NULL; extra columns are ignored.
    """
    table = staging_table(name)
    missing = [c for c in frames.SCHEMAS[name] if c not in df.columns]
    if missing:
        raise ValueError(f"frame {name!r} is missing column(s) {missing}")
    df = frames.conform(df, name)
    columns = {col: _column_values(df[col]) for col in df.columns}
    columns["run_id"] = [run_id] * len(df)
    columns[ROW_COLUMN] = list(range(len(df)))
    with _writing(engine) as conn:
        conn.execute(table.delete().where(table.c.run_id == run_id))
        if len(df) and conn.dialect.driver == "psycopg2":
            _copy_rows(conn, table, columns)
        elif len(df):
            conn.execute(table.insert(), _records(columns))
    return len(df)


def _records(columns: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_rows(conn: Connection, table: sa.Table, columns: Mapping[str, list[Any]]) -> None:
    """Bulk load through PostgreSQL's COPY FROM STDIN (text format), about five times faster than
    batched INSERTs. Values travel as COPY data, never as SQL: the statement holds only identifiers,
    quoted by the dialect."""
    quote = conn.dialect.identifier_preparer
    names = ", ".join(quote.quote(c) for c in columns)
    statement = f"COPY {quote.format_table(table)} ({names}) FROM STDIN"
    encoded = [[_copy_text(v) for v in values] for values in columns.values()]
    data = io.StringIO("".join("\t".join(row) + "\n" for row in zip(*encoded, strict=True)))
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.copy_expert(statement, data)


def _copy_text(value: Any) -> str:
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime):
        return value.isoformat()
    return repr(value) if isinstance(value, float) else str(value)


def _column_values(series: pd.Series) -> list[Any]:
    missing = series.isna().tolist()
    values = series.astype(object).tolist()
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        values = [None if m else v.to_pydatetime() for v, m in zip(values, missing, strict=True)]
    elif series.dtype == "Float64":
        # A nullable float can hold NaN apart from NA; the database gets NULL for both.
        values = [None if m or math.isnan(v) else v for v, m in zip(values, missing, strict=True)]
    else:
        values = [None if m else v for v, m in zip(values, missing, strict=True)]
    return values


def read_frame(engine: Engine, run_id: str, name: str) -> pd.DataFrame:
    """This run's frame `name`, conformed to its schema, in the order it was written."""
    table = staging_table(name)
    names = list(frames.SCHEMAS[name])
    stmt = (
        sa.select(*(table.c[c] for c in names)).where(table.c.run_id == run_id).order_by(table.c[ROW_COLUMN])
    )
    with _reading(engine) as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return frames.empty(name)
    data = dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
    return frames.conform(pd.DataFrame(data, dtype=object), name)


def newest_staged_run(engine: Engine, name: str) -> str | None:
    """The newest recorded run (by start) that staged rows of frame `name`, or None.

    One query, however many runs staged nothing (a run that failed before extracting).
    """
    table = staging_table(name)
    staged = sa.exists().where(table.c.run_id == runs.c.run_id)
    stmt = (
        sa.select(runs.c.run_id).where(staged).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(1)
    )
    with _reading(engine) as conn:
        return conn.execute(stmt).scalar()


def purge_staging(engine: Engine, keep_runs: int = 30) -> int:
    """Delete staged frames of finished runs older than the newest `keep_runs` runs.

    Staging holds full API snapshots per run, so it grows with every run. Running runs and staging
    of run ids without a `billing_runs` row are left alone (a run may stage before it is recorded).
    Returns the number of rows deleted.
    """
    if keep_runs < 0:
        raise ValueError("keep_runs must be >= 0")
    newest = (
        sa.select(runs.c.run_id).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(keep_runs)
    )
    stmt = sa.select(runs.c.run_id).where(runs.c.status != "running", runs.c.run_id.not_in(newest))
    deleted = 0
    with _writing(engine) as conn:
        old = [r for (r,) in conn.execute(stmt)]
        for chunk in _chunks(old):
            for table in STAGING.values():
                deleted += conn.execute(table.delete().where(table.c.run_id.in_(chunk))).rowcount
    return deleted


# --- quarantine -----------------------------------------------------------------------------------

_Q_FIELDS = ("huntress_organization_id", "huntress_organization_name", "cw_company_id", "product", "detail")


def upsert_quarantine(
    engine: Engine, run_id: str, billing_date: date | datetime | str, rows: Iterable[Mapping[str, Any]]
) -> int:
    """Record this run's quarantined keys; returns the number of open rows inserted or refreshed.

    At most one open row per (billing_date, sync_key, reason_code): a re-run refreshes that row's
    run_id, detail, payload, names and last_seen_at. A dismissed row for the same triple stays
    dismissed (a user decided it for that billing date): only its last_seen_at moves, so the review
    shows the problem is still reported. A resolved row does not block a new open one.
    """
    day = _as_date(billing_date)
    wanted = {(r["sync_key"], r["reason_code"]): r for r in map(_quarantine_input, rows)}
    if not wanted:
        return 0
    # A concurrent run of the same billing date may insert the same open row between our read and
    # write; the unique index refuses it and the second attempt refreshes that row instead.
    try:
        with _writing(engine) as conn:
            return _upsert_quarantine(conn, run_id, day, wanted)
    except sa.exc.IntegrityError:
        with _writing(engine) as conn:
            return _upsert_quarantine(conn, run_id, day, wanted)


def _quarantine_input(row: Mapping[str, Any]) -> dict[str, Any]:
    reason = _required_text(row, "reason_code")
    if reason not in REASON_CODES:
        raise ValueError(f"unknown reason_code {reason!r}; known: {list(REASON_CODES)}")
    out = {f: _clean(row.get(f)) for f in _Q_FIELDS}
    out.update(sync_key=_required_text(row, "sync_key"), reason_code=reason, payload=row.get("payload"))
    return out


def _upsert_quarantine(
    conn: Connection, run_id: str, day: date, wanted: Mapping[tuple[str, str], dict[str, Any]]
) -> int:
    q = quarantine
    stmt = sa.select(q.c.id, q.c.sync_key, q.c.reason_code, q.c.status).where(
        q.c.billing_date == day, q.c.status.in_(("open", "dismissed"))
    )
    existing: dict[tuple[str, str], tuple[int, str]] = {}
    for row_id, key, reason, status in conn.execute(stmt):
        if existing.get((key, reason), (0, ""))[1] != "open":  # an open row wins over a dismissed one
            existing[(key, reason)] = (row_id, status)
    now = _now()
    inserts, refreshes, dismissed = [], [], []
    for triple, row in wanted.items():
        row_id, status = existing.get(triple, (None, None))
        if status == "dismissed":
            dismissed.append({"b_id": row_id, "b_seen": now})
        elif status == "open":
            refreshes.append(
                {**{f"b_{k}": v for k, v in row.items()}, "b_id": row_id, "b_run": run_id, "b_seen": now}
            )
        else:
            inserts.append(
                {
                    **row,
                    "run_id": run_id,
                    "billing_date": day,
                    "status": "open",
                    "first_seen_at": now,
                    "last_seen_at": now,
                }
            )
    if inserts:
        conn.execute(q.insert(), inserts)
    if refreshes:
        fields = (*_Q_FIELDS, "payload")
        values = {f: sa.bindparam(f"b_{f}", type_=q.c[f].type) for f in fields}
        stmt = q.update().where(q.c.id == sa.bindparam("b_id"))
        conn.execute(
            stmt.values(**values, run_id=sa.bindparam("b_run"), last_seen_at=sa.bindparam("b_seen")),
            refreshes,
        )
    if dismissed:
        stmt = q.update().where(q.c.id == sa.bindparam("b_id")).values(last_seen_at=sa.bindparam("b_seen"))
        conn.execute(stmt, dismissed)
    return len(inserts) + len(refreshes)


def resolve_synced(
    engine: Engine, run_id: str, billing_date: date | datetime | str, sync_keys: Iterable[str]
) -> int:
    """Resolve open rows of these keys for this billing date and earlier ones: the key is now in step.

    Call it with keys whose outcome settled the key (updated, unchanged, not_applicable). Later
    billing dates are left alone: an older run succeeding says nothing about a newer invoice.
    """
    day, keys = _as_date(billing_date), sorted(set(sync_keys))
    q, resolved = quarantine, 0
    values = {"status": "resolved", "resolved_at": _now(), "resolved_by": f"sync:{run_id}"}
    with _writing(engine) as conn:
        for chunk in _chunks(keys):
            where = (q.c.status == "open", q.c.billing_date <= day, q.c.sync_key.in_(chunk))
            resolved += conn.execute(q.update().where(*where).values(**values)).rowcount
    return resolved


def resolve_superseded(
    engine: Engine,
    run_id: str,
    billing_date: date | datetime | str,
    current: Mapping[str, str],
    seen_keys: Iterable[str] | None = None,
) -> int:
    """Resolve open rows of this billing date that this run's picture contradicts.

    `current` maps each key this run quarantined to its reason. An open row of this billing date
    whose key is now quarantined for a *different* reason is resolved with the note "superseded by
    <reason>" (the current reason has, or gets, its own row). When `seen_keys` is given (every key
    the run produced an outcome for, quarantined or not), an open row of this billing date whose key
    the run never produced is resolved too, noted "no longer reported" (e.g. an organization key
    after the organization got mapped: its usage now syncs under a company key). Rows of other
    billing dates are untouched. Keys not in `current` but seen are left to `resolve_synced`, so
    push-time reasons survive until the key really syncs.
    """
    day, now, by = _as_date(billing_date), _now(), f"sync:{run_id}"
    seen = None if seen_keys is None else set(seen_keys) | set(current)
    q = quarantine
    with _writing(engine) as conn:
        open_rows = conn.execute(
            sa.select(q.c.id, q.c.sync_key, q.c.reason_code, q.c.note).where(
                q.c.billing_date == day, q.c.status == "open"
            )
        ).all()
        updates = []
        for row_id, key, reason, note in open_rows:
            if key in current and current[key] != reason:
                why = f"superseded by {current[key]}"
            elif seen is not None and key not in seen:
                why = "no longer reported"
            else:
                continue
            updates.append({"b_id": row_id, "b_note": _append_note(note, why)})
        if updates:
            stmt = q.update().where(q.c.id == sa.bindparam("b_id"), q.c.status == "open")
            conn.execute(
                stmt.values(status="resolved", resolved_at=now, resolved_by=by, note=sa.bindparam("b_note")),
                updates,
            )
    return len(updates)


def _append_note(note: str | None, text: str) -> str:
    return f"{note}; {text}" if note else text


def _quarantine_filters(
    status: str | None,
    billing_date: date | datetime | str | None,
    reason_code: str | None,
    company_id: int | None,
    run_id: str | None,
    sync_key: str | None,
) -> list[sa.ColumnElement[bool]]:
    q, where = quarantine, []
    if status is not None:
        where.append(q.c.status == status)
    if billing_date is not None:
        where.append(q.c.billing_date == _as_date(billing_date))
    if reason_code is not None:
        where.append(q.c.reason_code == reason_code)
    if company_id is not None:
        where.append(q.c.cw_company_id == int(company_id))
    if run_id is not None:
        where.append(q.c.run_id == run_id)
    if sync_key is not None:
        where.append(q.c.sync_key == sync_key)
    return where


def list_quarantine(
    engine: Engine,
    *,
    status: str | None = None,
    billing_date: date | datetime | str | None = None,
    reason_code: str | None = None,
    company_id: int | None = None,
    run_id: str | None = None,
    sync_key: str | None = None,
    limit: int | None = 500,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Quarantine rows matching every given filter, most recently seen first."""
    where = _quarantine_filters(status, billing_date, reason_code, company_id, run_id, sync_key)
    q = quarantine
    stmt = (
        sa.select(q)
        .where(*where)
        .order_by(q.c.last_seen_at.desc(), q.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt))


def count_quarantine(
    engine: Engine,
    *,
    status: str | None = None,
    billing_date: date | datetime | str | None = None,
    reason_code: str | None = None,
    company_id: int | None = None,
    run_id: str | None = None,
    sync_key: str | None = None,
) -> int:
    """How many rows `list_quarantine` would return without limit/offset (for paging)."""
    where = _quarantine_filters(status, billing_date, reason_code, company_id, run_id, sync_key)
    with _reading(engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(quarantine).where(*where)).scalar_one()


def get_quarantine(engine: Engine, quarantine_id: int) -> dict[str, Any] | None:
    with _reading(engine) as conn:
        row = conn.execute(sa.select(quarantine).where(quarantine.c.id == int(quarantine_id))).first()
    return None if row is None else dict(row._mapping)


def set_quarantine_status(
    engine: Engine, quarantine_id: int, status: str, user: str, note: str | None = None
) -> dict[str, Any]:
    """A reviewer's decision on one row; returns the updated row.

    dismissed/resolved record resolved_by = user and resolved_at = now (and `note` when given).
    open (reopen) clears resolved_at/resolved_by so "open ⇒ not resolved" holds for any reader, and
    keeps who reopened it in the note. Raises ValueError for a bad status, empty user, or a reopen
    that would make a second open row for the same billing date, key and reason;
    QuarantineNotFound for an unknown id.
    """
    if status not in QUARANTINE_STATUSES:
        raise ValueError(f"status must be one of {list(QUARANTINE_STATUSES)}, not {status!r}")
    if not isinstance(user, str) or not user.strip():
        raise ValueError("user is required")
    q = quarantine
    with _writing(engine) as conn:
        row = conn.execute(sa.select(q).where(q.c.id == int(quarantine_id))).first()
        if row is None:
            raise QuarantineNotFound(f"no quarantine row with id {quarantine_id}")
        if status == "open":
            values = _reopen_values(conn, row, user, note)
        else:
            values = {"status": status, "resolved_at": _now(), "resolved_by": user}
            if note is not None:
                values["note"] = note
        conn.execute(q.update().where(q.c.id == row.id).values(**values))
        return dict(conn.execute(sa.select(q).where(q.c.id == row.id)).one()._mapping)


def _reopen_values(conn: Connection, row: sa.Row[Any], user: str, note: str | None) -> dict[str, Any]:
    q = quarantine
    if row.status != "open":
        twin = conn.execute(
            sa.select(q.c.id).where(
                q.c.billing_date == row.billing_date,
                q.c.sync_key == row.sync_key,
                q.c.reason_code == row.reason_code,
                q.c.status == "open",
            )
        ).first()
        if twin is not None:
            raise ValueError(
                f"quarantine row {twin.id} is already open for the same billing date, key and reason"
            )
    text = f"reopened by {user}" + (f": {note}" if note else "")
    return {"status": "open", "resolved_at": None, "resolved_by": None, "note": text}


# --- ledger ---------------------------------------------------------------------------------------

_CHANGE_FIELDS = (
    "cw_company_id",
    "agreement_id",
    "addition_id",
    "product",
    "huntress_quantity",
    "previous_quantity",
    "new_quantity",
)


def record_changes(
    engine: Engine, run_id: str, billing_date: date | datetime | str, rows: Iterable[Mapping[str, Any]]
) -> int:
    """Write ledger rows, one per (run_id, sync_key): recording a key again (a retried push task)
    updates its row instead of adding one. applied_at is now unless the row gives it."""
    day, now = _as_date(billing_date), _now()
    records: dict[str, dict[str, Any]] = {}
    for row in rows:
        action = _required_text(row, "action")
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {list(ACTIONS)}, not {action!r}")
        key = _required_text(row, "sync_key")
        # ON CONFLICT cannot touch one row twice in a statement: the last record of a key wins.
        records[key] = {
            **{f: _clean(row.get(f)) for f in _CHANGE_FIELDS},
            "run_id": run_id,
            "billing_date": day,
            "sync_key": key,
            "action": action,
            "applied_at": _clean(row.get("applied_at")) or now,
        }
    if records:
        update = (*_CHANGE_FIELDS, "billing_date", "action", "applied_at")
        with _writing(engine) as conn:
            _upsert(conn, changes, ("run_id", "sync_key"), list(records.values()), update)
    return len(records)


def list_changes(
    engine: Engine,
    *,
    run_id: str | None = None,
    billing_date: date | datetime | str | None = None,
    company_id: int | None = None,
    action: str | None = None,
    limit: int | None = 500,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Ledger rows matching every given filter, in the order they were first recorded."""
    c, where = changes, []
    if run_id is not None:
        where.append(c.c.run_id == run_id)
    if billing_date is not None:
        where.append(c.c.billing_date == _as_date(billing_date))
    if company_id is not None:
        where.append(c.c.cw_company_id == int(company_id))
    if action is not None:
        where.append(c.c.action == action)
    stmt = sa.select(c).where(*where).order_by(c.c.id).limit(limit).offset(offset)
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt))


def changes_for_run(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    return list_changes(engine, run_id=run_id, limit=None)


def ledger_count(engine: Engine, run_id: str | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(changes)
    if run_id is not None:
        stmt = stmt.where(changes.c.run_id == run_id)
    with _reading(engine) as conn:
        return conn.execute(stmt).scalar_one()


# --- runs -----------------------------------------------------------------------------------------


def start_run(
    engine: Engine,
    run_id: str,
    billing_date: date | datetime | str,
    invoice_id: int | None,
    mode: str,
    settings: Mapping[str, Any],
) -> None:
    """Record a run as running. Starting the same run_id again (a retried task, a cleared run)
    restarts its record: started_at now, and the previous attempt's results cleared."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}, not {mode!r}")
    row = {
        "run_id": run_id,
        "billing_date": _as_date(billing_date),
        "invoice_id": _clean(invoice_id),
        "mode": mode,
        "started_at": _now(),
        "finished_at": None,
        "status": "running",
        "counts": None,
        "checks": None,
        "report_path": None,
        "settings": dict(settings),
    }
    with _writing(engine) as conn:
        _upsert(conn, runs, ("run_id",), [row], [c for c in row if c != "run_id"])


def finish_run(
    engine: Engine,
    run_id: str,
    status: str,
    counts: Mapping[str, int],
    checks: Mapping[str, Any] | None = None,
    report_path: str | None = None,
) -> None:
    """Close a run with its final status, outcome counts, reconciliation checks and report path."""
    values = {
        "finished_at": _now(),
        "status": status,
        "counts": dict(counts),
        "checks": None if checks is None else dict(checks),
        "report_path": None if report_path is None else str(report_path),
    }
    with _writing(engine) as conn:
        if conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values)).rowcount == 0:
            raise RunNotFound(f"no billing run {run_id!r} (start_run was not called)")


def get_run(engine: Engine, run_id: str) -> dict[str, Any] | None:
    with _reading(engine) as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    return None if row is None else dict(row._mapping)


def list_runs(
    engine: Engine,
    limit: int | None = 50,
    offset: int = 0,
    *,
    billing_date: date | datetime | str | None = None,
) -> list[dict[str, Any]]:
    """Runs, newest start first."""
    stmt = (
        sa.select(runs).order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit).offset(offset)
    )
    if billing_date is not None:
        stmt = stmt.where(runs.c.billing_date == _as_date(billing_date))
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt))


# --- organization map -----------------------------------------------------------------------------


def org_map_frame(engine: Engine) -> pd.DataFrame:
    """The manual organization → company map as the `org_map` frame (matching rule 1)."""
    return org_map_rows_frame(list_org_map(engine))


def org_map_rows_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """`list_org_map` rows as the `org_map` frame, for a caller that already holds them."""
    df = pd.DataFrame(
        {
            "organization_id": [r["huntress_organization_id"] for r in rows],
            "company_id": [r["cw_company_id"] for r in rows],
        },
        dtype=object,
    )
    return frames.conform(df, "org_map")


def list_org_map(engine: Engine) -> list[dict[str, Any]]:
    stmt = sa.select(org_map).order_by(org_map.c.huntress_organization_id)
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt))


def set_org_map(
    engine: Engine, organization_id: int, company_id: int, note: str | None, user: str
) -> dict[str, Any]:
    """Map an organization to a company, replacing any earlier mapping of it; returns the row.

    created_by/created_at describe the mapping as it now stands: changing the company is a new
    decision, so they move to this user and now.
    """
    if not isinstance(user, str) or not user.strip():
        raise ValueError("user is required")
    row = {
        "huntress_organization_id": _as_id(organization_id, "organization_id"),
        "cw_company_id": _as_id(company_id, "company_id"),
        "note": note,
        "created_by": user,
        "created_at": _now(),
    }
    with _writing(engine) as conn:
        _upsert(
            conn,
            org_map,
            ("huntress_organization_id",),
            [row],
            ("cw_company_id", "note", "created_by", "created_at"),
        )
        stmt = sa.select(org_map).where(org_map.c.huntress_organization_id == row["huntress_organization_id"])
        return dict(conn.execute(stmt).one()._mapping)


def delete_org_map(engine: Engine, organization_id: int) -> bool:
    """Remove an organization's mapping; False when there was none."""
    stmt = org_map.delete().where(
        org_map.c.huntress_organization_id == _as_id(organization_id, "organization_id")
    )
    with _writing(engine) as conn:
        return conn.execute(stmt).rowcount > 0


def _as_id(value: Any, field: str) -> int:
    value = _clean(value)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ValueError(f"{field} must be an integer id, not {value!r}")
    return value
