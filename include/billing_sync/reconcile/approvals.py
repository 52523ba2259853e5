"""Approvals (`billing_approvals`, docs/contract.md §3, §4) applied to a run's outcomes.

A person approves exactly one held change (`change`: this addition, from this quantity to that one)
or one new addition (`create_addition`: this quantity on this agreement), for one billing date. A
run of that billing date applies a pending approval only where what it computes matches it
exactly; any other picture makes the approval stale. Nothing carries over: not to other numbers,
another addition, another agreement, another key or another billing date (the caller passes only
the approvals of the run's billing date).

Pure functions on frames, like the rest of `reconcile`: the caller loads the approvals and records
what becomes of them.

Decisions:
- `change` matches a key that is held as `change_exceeds_limit`, or a change the guard now lets
  through, with the same addition, ConnectWise quantity (`from_quantity`) and aimed-for quantity
  (`to_quantity`). The key becomes a `change` to push, naming the approval.
- `create_addition` matches a key that is `no_live_addition` with the same company, product and
  aimed-for quantity, where the approved agreement is still one of the company's live agreements as
  this run read them. The key becomes `create`: the push creates the addition.
- Anything else (the key in step now, other numbers, another reason, no such key this run, the
  agreement gone) leaves the key as computed and the approval stale.
- A key a standing override decides (`override_id` set) is offered and released like any other,
  for the quantity the override aims for (`target`), never Huntress's count past it. Outcomes
  staged before `target` existed name no aim for such a key: nothing is offered or released.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any, NotRequired, TypedDict

import pandas as pd

from billing_sync import money

from .live import _billing_day, _type_filter
from .text import _qty, _text

# The reason a key is held for, by the kind of approval that releases it.
HELD_REASON = {"change": "change_exceeds_limit", "create_addition": "no_live_addition"}
# The outcome an approved key takes before the push (the push step turns it into updated/created).
APPROVED_OUTCOME = {"change": "change", "create_addition": "create"}


class Approval(TypedDict):
    """What matching reads of an approval (store.records.ApprovalRow, the same types)."""

    id: int
    sync_key: str
    kind: str  # change | create_addition
    cw_company_id: int
    product: str
    addition_id: int | None
    agreement_id: int | None
    from_quantity: float | None
    to_quantity: float
    approved_by: str
    approved_at: datetime


class Proposal(TypedDict):
    """What a person may approve for a held key, as store.add_approval takes it."""

    cw_company_id: int
    product: str
    to_quantity: int
    kind: str  # change | create_addition
    addition_id: NotRequired[int]
    agreement_id: NotRequired[int | None]
    from_quantity: NotRequired[float]


def aimed_quantity(record: Mapping[str, Any] | pd.Series) -> int | None:
    """The quantity the run aims for on a key (an outcome row, or a quarantine row's payload): what
    an approval's `to_quantity` must equal. None when the run has no usable count."""
    value: Any = record.get("target")
    if _missing(value):
        if not _missing(record.get("override_id")):
            return None  # recorded before `target`: the override's aim is not known
        value = record.get("huntress_quantity")
    return None if _missing(value) else int(value)


def proposal(record: Mapping[str, Any], reason_code: str) -> Proposal | None:
    """What a person may approve for a held key (an outcome row or a quarantine row's payload), as
    `store.add_approval` takes it, or None when the row offers nothing to approve."""
    to = aimed_quantity(record)
    company: Any = record.get("company_id")
    if to is None or _missing(company) or _missing(record.get("product")):
        return None
    base: Proposal = {
        "cw_company_id": int(company),
        "product": str(record["product"]),
        "to_quantity": to,
        "kind": "create_addition",
    }
    if reason_code == "change_exceeds_limit":
        addition: Any = record.get("addition_id")
        agreement: Any = record.get("agreement_id")
        old: Any = record.get("previous_quantity")
        if _missing(addition) or _missing(old) or float(old) == to:
            return None
        agreement_id = None if _missing(agreement) else int(agreement)
        return {
            **base,
            "kind": "change",
            "addition_id": int(addition),
            "agreement_id": agreement_id,
            "from_quantity": float(old),
        }
    if reason_code == "no_live_addition":
        return {**base, "kind": "create_addition"}
    return None


def live_agreements(
    agreements: pd.DataFrame, company_id: int, billing_date: date, agreement_types: Sequence[str] = ()
) -> pd.DataFrame:
    """The company's agreements (frame `agreements`) a new addition may go on for `billing_date`:
    Active, not cancelled, started by the billing date and not ended before it, of an allowed type;
    by name, then id."""
    a = agreements
    day = _billing_day(billing_date)
    mask = (
        a["company_id"].eq(company_id).fillna(False)
        & a["status"].eq("Active").fillna(False)
        & a["cancelled"].eq(False).fillna(False)
        & (a["start_date"].isna() | (a["start_date"] < day + pd.Timedelta(days=1)).fillna(False))
        & (a["end_date"].isna() | (a["end_date"] >= day).fillna(False))
    ).to_numpy(dtype=bool) & _type_filter(a["type"], agreement_types)
    out = a.loc[mask].drop_duplicates("agreement_id")
    return out.sort_values(["name", "agreement_id"], kind="stable", na_position="last")


def apply_approvals(
    outcomes: pd.DataFrame,
    approvals: Iterable[Approval],
    agreements: pd.DataFrame,
    billing_date: date,
    agreement_types: Sequence[str] = (),
) -> tuple[pd.DataFrame, list[int]]:
    """(`outcomes` with the approved keys released, ids of the approvals that went stale).

    `approvals`: the pending approvals of the run's billing date (at most one per key). A released
    key is `change` (or `create`) with `approval_id` set, `new_quantity` the approved quantity and
    the detail naming the approver; every other key is left exactly as computed.
    """
    out = outcomes.copy()
    if "approval_id" not in out.columns:
        out["approval_id"] = pd.array([pd.NA] * len(out), dtype="Int64")
    position = {key: i for i, key in zip(out.index, out["sync_key"], strict=True)}
    stale: list[int] = []
    for approval in approvals:
        i = position.get(str(approval["sync_key"]))
        row = None if i is None else out.loc[i]
        if row is None or not _matches(row, approval, agreements, billing_date, agreement_types):
            stale.append(int(approval["id"]))
            continue
        kind = str(approval["kind"])
        to = int(approval["to_quantity"])
        out.at[i, "outcome"] = APPROVED_OUTCOME[kind]
        out.at[i, "reason_code"] = pd.NA
        out.at[i, "new_quantity"] = to
        out.at[i, "approval_id"] = int(approval["id"])
        if kind == "create_addition":
            out.at[i, "agreement_id"] = _given(approval["agreement_id"])
        _price_released(out, i)
        out.at[i, "detail"] = _detail(approval)
    return out, stale


def _price_released(out: pd.DataFrame, i: Any) -> None:
    """The monthly amount of a released key, at the quantity approved. Reconcile priced the key while
    it was held (no amount: nothing was to be written), so without this an approved change reached
    the ledger with `monthly_amount_delta` NULL and `recovered` left it out (issue 20 §3).

    A new addition is created without a unitPrice, so ConnectWise bills it at the catalog item's
    price (as read with the run), and all its units are new. No price anywhere: the amount stays NA
    and the write goes ahead (a missing price never blocks a write)."""
    row = out.loc[i]
    if out.at[i, "outcome"] == "create":
        unit = row.get("unit_price")
        unit = row.get("catalog_price") if _missing(unit) else unit
        out.at[i, "unit_price"] = pd.NA if _missing(unit) else unit
        moved = money.amount(out.at[i, "new_quantity"])
    else:
        unit = row.get("unit_price")
        new, old = money.amount(out.at[i, "new_quantity"]), money.amount(row.get("previous_quantity"))
        moved = None if new is None or old is None else new - old
    delta = None if _missing(unit) else money.text(money.times(unit, moved))
    out.at[i, "monthly_amount_delta"] = pd.NA if delta is None else delta


def _matches(
    row: pd.Series,
    approval: Approval,
    agreements: pd.DataFrame,
    billing_date: date,
    agreement_types: Sequence[str],
) -> bool:
    kind = approval["kind"]
    if kind not in HELD_REASON:
        return False
    held = row["outcome"] == "quarantined" and row["reason_code"] == HELD_REASON[kind]
    if not (held or (kind == "change" and row["outcome"] == "change")):
        return False
    if not (_same(row["company_id"], approval["cw_company_id"]) and row["product"] == approval["product"]):
        return False
    if not _same(aimed_quantity(row), approval["to_quantity"]):
        return False
    if kind == "change":
        return _same(row["addition_id"], approval["addition_id"]) and _same(
            row["previous_quantity"], approval["from_quantity"]
        )
    fits = live_agreements(agreements, int(approval["cw_company_id"]), billing_date, agreement_types)
    agreement_id = approval["agreement_id"]
    return agreement_id is not None and agreement_id in set(fits["agreement_id"].dropna().astype(int))


def _detail(approval: Approval) -> str:
    who = _text(approval.get("approved_by"), quote=False)
    when = approval.get("approved_at")
    on = f" on {when:%Y-%m-%d %H:%M} UTC" if hasattr(when, "strftime") else ""
    to = _qty(approval["to_quantity"])
    if approval["kind"] == "create_addition":
        what = f"new addition of {to} on agreement {_given(approval['agreement_id'])}"
    else:
        what = f"{_qty(approval['from_quantity'])} → {to}"
    return f"{what}: approved by {who}{on} (approval {int(approval['id'])})"


def _given(agreement_id: int | None) -> int:
    """The agreement of a `create_addition` approval, which always names one; TypeError, as
    int(None) raises, when it does not."""
    if agreement_id is None:
        raise TypeError("a create_addition approval without its agreement_id")
    return int(agreement_id)


def _same(value: Any, target: Any) -> bool:
    if _missing(value) or _missing(target):
        return False
    return float(value) == float(target)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False
