"""Value helpers every part of the store shares: dates, driver-ready values, batched upserts."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

_IN_CHUNK = 500  # keys per IN (...) list: well under SQLite's bound-variable limit


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
