"""The rows a run writes: quarantine rows, ledger rows, frames as plain records.

A held key becomes a quarantine row, a key's outcome a ledger row; frames become plain records for
JSON and SQL."""

from __future__ import annotations

import logging
from typing import Any, NotRequired, TypedDict, cast

import pandas as pd

from . import money
from .run_rows import LedgerInput, QuarantineInput

log = logging.getLogger(__name__)


class OutcomeRecord(TypedDict):
    """One row of reconcile's outcomes frame (frames.SCHEMAS["outcomes"]) as plain values, NA → None."""

    sync_key: str
    company_id: int | None
    company_name: str | None
    organization_ids: str | None
    organization_names: str | None
    match_rule: str | None
    product: str | None
    catalog_identifier: str | None
    agreement_id: int | None
    addition_id: int | None
    huntress_quantity: int | None
    previous_quantity: float | None
    new_quantity: int | None
    outcome: str
    reason_code: str | None
    detail: str | None
    override_id: int | None
    override: str | None
    unit_price: str | None
    catalog_price: str | None
    monthly_amount_delta: str | None
    amount_at_stake: str | None
    approval_id: int | None
    target: int | None
    effective_date: NotRequired[str]  # a change the push creates an addition for: the billing date


def outcome_records(df: pd.DataFrame) -> list[OutcomeRecord]:
    """An outcomes frame's rows (its columns are frames.SCHEMAS["outcomes"]) as `OutcomeRecord`s."""
    return cast("list[OutcomeRecord]", records(df))


def quarantine_row(r: OutcomeRecord) -> QuarantineInput:
    org_ids = str(r.get("organization_ids") or "")
    single_org = int(org_ids) if org_ids.isdigit() else None
    reason = r["reason_code"]
    if reason is None:  # a held key always has one; the store would refuse the row without it
        raise ValueError(f"{r['sync_key']}: a held key without a reason_code")
    return {
        "sync_key": r["sync_key"],
        "huntress_organization_id": single_org,
        "huntress_organization_name": r.get("organization_names"),
        "cw_company_id": r.get("company_id"),
        "product": r.get("product"),
        "catalog_identifier": r.get("catalog_identifier"),  # a product may keep several items in step
        "reason_code": reason,
        "detail": r.get("detail"),
        "payload": {k: v for k, v in r.items() if k not in ("reason_code", "detail")},
        "amount_at_stake": amount_at_stake(r),
    }


def amount_at_stake(r: OutcomeRecord) -> str | None:
    """A held key's amount at stake: reconcile's, or for a change the push could not make
    (changed_since_read, push_rejected) the monthly amount it would have moved."""
    if r.get("amount_at_stake") is not None:
        return str(r["amount_at_stake"])
    delta = money.amount(r.get("monthly_amount_delta"))
    return None if delta is None else money.text(abs(delta))


# Ledger actions that move money (written, or planned by a dry run): each carries its monthly amount.
MONEY_ACTIONS = ("updated", "created", "planned")


def ledger_row(r: OutcomeRecord, action: str) -> LedgerInput:
    """A key's outcome (after the push: `action`) as its ledger row.

    The guard on the ledger's money (issue 20 §3): a row of MONEY_ACTIONS whose price is known never
    goes without its monthly amount. Reconcile prices every key it lets through, and an approval
    prices the key it releases; a row that still arrives without one is priced here from its own
    unit price and quantities (previous 0 for a created addition) and logged as a warning, because
    some step upstream missed it. It is never refused: the write already happened, and its record
    matters more. A row with no price anywhere keeps a NULL amount."""
    unit, delta = r.get("unit_price"), r.get("monthly_amount_delta")
    if r.get("outcome") == "create" and unit is None:
        # An approved new addition is created without a unitPrice, so ConnectWise bills it at the
        # catalog item's price (as read with the run).
        unit = r.get("catalog_price")
    if action in MONEY_ACTIONS and money.amount(delta) is None and money.amount(unit) is not None:
        delta = _amount_moved(r, unit, action)
        if delta is not None:
            log.warning("%s: ledger row without its monthly amount; priced as %s", r["sync_key"], delta)
    return {
        "sync_key": r["sync_key"],
        "cw_company_id": r.get("company_id"),
        "agreement_id": r.get("agreement_id"),
        "addition_id": r.get("addition_id"),
        "product": r.get("product"),
        "catalog_identifier": r.get("catalog_identifier"),  # the item whose addition this row is about
        "huntress_quantity": r.get("huntress_quantity"),
        "previous_quantity": r.get("previous_quantity"),
        "new_quantity": r.get("new_quantity") if action != "unchanged" else r.get("previous_quantity"),
        "action": action,
        "unit_price": unit,  # Decimal text, as reconcile computed it
        "monthly_amount_delta": delta,
        "override_id": r.get("override_id"),
        "approval_id": r.get("approval_id"),
    }


def _amount_moved(r: OutcomeRecord, unit: str | None, action: str) -> str | None:
    """unit × (new − previous) as Decimal text; a created addition's previous is 0."""
    new, old = money.amount(r.get("new_quantity")), money.amount(r.get("previous_quantity"))
    if old is None and (action == "created" or r.get("outcome") == "create"):
        old = money.ZERO
    if new is None or old is None:
        return None
    return money.text(money.times(unit, new - old))


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values (NA → None), safe for JSON and SQL. Any frame's: the
    record's type is its frame's (`outcome_records` for the outcomes)."""
    return [
        {str(k): (None if is_na(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
        for row in df.to_dict("records")  # the columns are named by text: str() changes none
    ]


def is_na(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
