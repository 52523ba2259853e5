"""Per-run staging of frames, keyed by tenant and run id.

Each extract writes its frame, later tasks read it back. Airflow gives every tenant's DAG the same run
ids (`scheduled__<date>`), so a run id alone names no run.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import frames
from .database import _reading, _writing
from .records import RunRecord
from .schema import ROW_COLUMN, STAGING, runs, staging_table
from .values import _as_date, _chunks, _row, _tenant_id


def write_frame(engine: Engine, run_id: str, name: str, df: pd.DataFrame, *, tenant: str) -> int:
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
    columns["tenant"] = [_tenant_id(tenant)] * len(df)
    with _writing(engine) as conn:
        conn.execute(table.delete().where(table.c.tenant == tenant, table.c.run_id == run_id))
        if len(df) and conn.dialect.driver == "psycopg2":
            _copy_rows(conn, table, columns)
        elif len(df):
            conn.execute(table.insert(), _records(columns))
    return len(df)


def _records(columns: Mapping[str, list[Any]]) -> list[dict[str, Any]]:  # any frame's columns
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
    driver = conn.connection.driver_connection  # the psycopg2 connection: None only once closed
    assert driver is not None
    with driver.cursor() as cursor:
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


def read_frame(engine: Engine, run_id: str, name: str, *, tenant: str) -> pd.DataFrame:
    """This run's frame `name`, conformed to its schema, in the order it was written."""
    table = staging_table(name)
    names = list(frames.SCHEMAS[name])
    stmt = (
        sa.select(*(table.c[c] for c in names))
        .where(table.c.tenant == tenant, table.c.run_id == run_id)
        .order_by(table.c[ROW_COLUMN])
    )
    with _reading(engine) as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        return frames.empty(name)
    data = dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
    return frames.conform(pd.DataFrame(data, dtype=object), name)


# A full run of its billing date (not an apply's subset, docs/contract.md §4 `scope`) that no task
# is writing any more: what the pages and an apply read staged frames from.
_COMPLETE_FULL_RUN = (runs.c.scope.is_(None), runs.c.status != "running")


def newest_staged_run(engine: Engine, name: str, *, tenant: str) -> str | None:
    """The tenant's newest recorded full run (by start), finished, that staged rows of frame `name`,
    or None: never a run still staging (its frames half written) nor an apply's few keys.

    One query, however many runs staged nothing (a run that failed before extracting).
    """
    table = staging_table(name)
    staged = sa.exists().where(table.c.tenant == runs.c.tenant, table.c.run_id == runs.c.run_id)
    stmt = (
        sa.select(runs.c.run_id)
        .where(runs.c.tenant == tenant, staged, *_COMPLETE_FULL_RUN)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(1)
    )
    with _reading(engine) as conn:
        return conn.execute(stmt).scalar()


def newest_reconciled_run(
    engine: Engine, billing_date: date | datetime | str, *, tenant: str
) -> RunRecord | None:
    """The billing date's newest finished full run that got as far as its outcomes (so its usage is
    staged and validated, its organizations and companies staged), as its billing_runs row; None."""
    table = staging_table("outcomes")
    staged = sa.exists().where(table.c.tenant == runs.c.tenant, table.c.run_id == runs.c.run_id)
    stmt = (
        sa.select(runs)
        .where(runs.c.tenant == tenant, runs.c.billing_date == _as_date(billing_date), staged)
        .where(*_COMPLETE_FULL_RUN)
        .order_by(runs.c.started_at.desc(), runs.c.run_id.desc())
        .limit(1)
    )
    with _reading(engine) as conn:
        row = conn.execute(stmt).first()
    return None if row is None else _row(row, RunRecord)


def purge_staging(engine: Engine, keep_runs: int = 30) -> int:
    """Delete staged frames of finished runs older than each tenant's newest `keep_runs` runs.

    Staging holds full API snapshots per run, so it grows with every run. Running runs and staging
    of run ids without a `billing_runs` row are left alone (a run may stage before it is recorded).
    Returns the number of rows deleted.
    """
    if keep_runs < 0:
        raise ValueError("keep_runs must be >= 0")
    rank = (
        sa.func.row_number()
        .over(partition_by=runs.c.tenant, order_by=(runs.c.started_at.desc(), runs.c.run_id.desc()))
        .label("rank")
    )
    ranked = sa.select(runs.c.tenant, runs.c.run_id, runs.c.status, rank).subquery()
    stmt = sa.select(ranked.c.tenant, ranked.c.run_id).where(
        ranked.c.status != "running", ranked.c.rank > keep_runs
    )
    deleted = 0
    with _writing(engine) as conn:
        old: dict[str, list[str]] = {}
        for tenant, run_id in conn.execute(stmt):
            old.setdefault(tenant, []).append(run_id)
        for tenant, run_ids in old.items():
            for chunk in _chunks(run_ids):
                for table in STAGING.values():
                    gone = table.delete().where(table.c.tenant == tenant, table.c.run_id.in_(chunk))
                    deleted += conn.execute(gone).rowcount
    return deleted
