"""Value helpers every part of the store shares: dates, driver-ready values, batched upserts."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from .. import money
from ..tenants import check_id

_IN_CHUNK = 500  # keys per IN (...) list: well under SQLite's bound-variable limit
R = TypeVar("R")  # a table's record (store.records)


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


def _text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} is required (non-empty text), got {value!r}")
    return value


_tenant_id = check_id  # a tenant id as the contract spells them ("default" for the single-tenant form)


def _user(value: Any) -> str:
    """Who decided: a non-empty display name."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("user is required")
    return value


def _quantity(value: Any, field: str) -> float:
    """A non-negative, finite quantity (ConnectWise quantities are decimals)."""
    value = _clean(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{field} must be a non-negative number, not {value!r}")
    return float(value)


def _optional_quantity(value: Any, field: str) -> float | None:
    return None if _clean(value) is None else _quantity(value, field)


def _amount(value: Any, field: str) -> Decimal | None:
    """An amount for a NUMERIC column: Decimal, int, or Decimal text (the frames' form); None when
    missing. Never a float, whose binary value is not the amount that was read."""
    value = _clean(value)
    if value is None:
        return None
    if isinstance(value, float):
        raise ValueError(f"{field} must be a Decimal or Decimal text, not the float {value!r}")
    amount = money.amount(value)
    if amount is None:
        raise ValueError(f"{field} must be an amount, not {value!r}")
    return amount


def _id(value: Any, field: str) -> int:
    """An integer id (ConnectWise or Huntress); digits as text are taken."""
    value = _clean(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{field} must be an integer id, not {value!r}")
    return value


def _optional_id(value: Any, field: str) -> int | None:
    return None if _clean(value) is None else _id(value, field)


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows(result: sa.CursorResult[Any], record: type[R]) -> list[R]:
    """The result's rows as `record`, the TypedDict of their table (store.records): selected whole
    from a table of ours, a row holds exactly its columns (tests/sync/store/test_records.py)."""
    return [_row(row, record) for row in result]


def _row(row: sa.Row[Any], record: type[R]) -> R:
    """One row as `record` (see `_rows`)."""
    return cast(R, dict(row._mapping))


def _upsert(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]],  # any table's rows: a helper of every table
    update: Sequence[str],
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE, batched. Both dialects spell it the same way."""
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = dialect_insert(table)
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update})
    conn.execute(stmt, rows)
