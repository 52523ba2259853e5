"""The rows a run writes: a held key as a quarantine row, a key's outcome as a ledger row, and
frames as plain records for JSON and SQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import pandas as pd

from . import money


def quarantine_row(r: Mapping[str, Any]) -> dict[str, Any]:
    org_ids = str(r.get("organization_ids") or "")
    single_org = int(org_ids) if org_ids.isdigit() else None
    return {
        "sync_key": r["sync_key"],
        "huntress_organization_id": single_org,
        "huntress_organization_name": r.get("organization_names"),
        "cw_company_id": r.get("company_id"),
        "product": r.get("product"),
        "reason_code": r["reason_code"],
        "detail": r.get("detail"),
        "payload": {k: v for k, v in r.items() if k not in ("reason_code", "detail")},
        "amount_at_stake": amount_at_stake(r),
    }


def amount_at_stake(r: Mapping[str, Any]) -> str | None:
    """A held key's amount at stake: reconcile's, or for a change the push could not make
    (changed_since_read, push_rejected) the monthly amount it would have moved."""
    if r.get("amount_at_stake") is not None:
        return str(r["amount_at_stake"])
    delta = money.amount(r.get("monthly_amount_delta"))
    return None if delta is None else money.text(abs(delta))


def ledger_row(r: Mapping[str, Any], action: str) -> dict[str, Any]:
    unit, delta = r.get("unit_price"), r.get("monthly_amount_delta")
    if r.get("outcome") == "create" and unit is None:
        # An approved new addition is created without a unitPrice, so ConnectWise bills it at the
        # catalog item's price (as read with the run); all of its units are new.
        unit = r.get("catalog_price")
        delta = money.text(money.times(unit, r.get("new_quantity")))
    return {
        "sync_key": r["sync_key"],
        "cw_company_id": r.get("company_id"),
        "agreement_id": r.get("agreement_id"),
        "addition_id": r.get("addition_id"),
        "product": r.get("product"),
        "huntress_quantity": r.get("huntress_quantity"),
        "previous_quantity": r.get("previous_quantity"),
        "new_quantity": r.get("new_quantity") if action != "unchanged" else r.get("previous_quantity"),
        "action": action,
        "unit_price": unit,  # Decimal text, as reconcile computed it
        "monthly_amount_delta": delta,
        "override_id": r.get("override_id"),
        "approval_id": r.get("approval_id"),
    }


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts of plain Python values (NA → None), safe for JSON and SQL."""
    return [
        {k: (None if is_na(v) else (v.item() if hasattr(v, "item") else v)) for k, v in row.items()}
        for row in cast("list[dict[str, Any]]", df.to_dict("records"))  # the columns are named by text
    ]


def is_na(v: Any) -> bool:
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
