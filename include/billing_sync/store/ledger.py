"""The ledger (`billing_changes`): one row per tenant, run and sync key, whatever the push did with it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ..run_rows import LedgerInput
from .database import _reading, _writing
from .records import LedgerRow
from .schema import ACTIONS, changes
from .values import _amount, _as_date, _clean, _now, _rows, _tenant_id, _text, _upsert

_CHANGE_FIELDS = (
    "cw_company_id",
    "agreement_id",
    "addition_id",
    "product",
    "catalog_identifier",  # the catalog item of the addition (revision 0011)
    "huntress_quantity",
    "previous_quantity",
    "new_quantity",
    "approval_id",  # the billing_approvals row a person approved this change or new addition with
    "override_id",  # the billing_overrides row that decided the quantity
)
# Money (NUMERIC): the addition's unitPrice at read, and unit_price × (new − previous).
_MONEY_FIELDS = ("unit_price", "monthly_amount_delta")


def record_changes(
    engine: Engine,
    run_id: str,
    billing_date: date | datetime | str,
    rows: Iterable[LedgerInput],
    *,
    tenant: str,
) -> int:
    """Write ledger rows, one per (tenant, run_id, sync_key): recording a key again (a retried push task)
    updates its row instead of adding one. applied_at is now unless the row gives it."""
    day, now = _as_date(billing_date), _now()
    records: dict[str, LedgerInput] = {}
    for row in rows:
        change = _ledger_input(row, now)
        # ON CONFLICT cannot touch one row twice in a statement: the last record of a key wins.
        records[change["sync_key"]] = change
    if records:
        update = (*_CHANGE_FIELDS, *_MONEY_FIELDS, "billing_date", "action", "applied_at")
        of_run = {"tenant": _tenant_id(tenant), "run_id": run_id, "billing_date": day}
        with _writing(engine) as conn:
            written = [{**change, **of_run} for change in records.values()]
            _upsert(conn, changes, ("tenant", "run_id", "sync_key"), written, update)
    return len(records)


def _ledger_input(row: LedgerInput, now: datetime) -> LedgerInput:
    """The row checked and cleaned for the driver (a frame's value may be a numpy scalar or NA)."""
    action = _text(row.get("action"), "action")
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {list(ACTIONS)}, not {action!r}")
    key = _text(row.get("sync_key"), "sync_key")
    cleaned = {
        **{f: _clean(row.get(f)) for f in _CHANGE_FIELDS},
        **{f: _amount(row.get(f), f) for f in _MONEY_FIELDS},
        "sync_key": key,
        "action": action,
        "applied_at": _clean(row.get("applied_at")) or now,
    }
    return cast(LedgerInput, cleaned)  # the columns above are LedgerInput's, values as the driver takes them


def list_changes(
    engine: Engine,
    *,
    run_id: str | None = None,
    billing_date: date | datetime | str | None = None,
    company_id: int | None = None,
    action: str | None = None,
    limit: int | None = 500,
    offset: int = 0,
    tenant: str,
) -> list[LedgerRow]:
    """The tenant's ledger rows matching every given filter, in the order they were first recorded."""
    c, where = changes, [changes.c.tenant == tenant]
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
        return _rows(conn.execute(stmt), LedgerRow)


def changes_for_run(engine: Engine, run_id: str, *, tenant: str) -> list[LedgerRow]:
    return list_changes(engine, run_id=run_id, limit=None, tenant=tenant)


def ledger_count(engine: Engine, run_id: str | None = None, *, tenant: str) -> int:
    stmt = sa.select(sa.func.count()).select_from(changes).where(changes.c.tenant == tenant)
    if run_id is not None:
        stmt = stmt.where(changes.c.run_id == run_id)
    with _reading(engine) as conn:
        return conn.execute(stmt).scalar_one()
