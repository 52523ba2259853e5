"""What bills on a date: which additions are live on the billing date, and why one is not."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, TypedDict

import numpy as np
import numpy.typing as npt
import pandas as pd

from billing_sync import frames

from .matching import _fold_key
from .text import _text


def _billing_day(billing_date: date) -> pd.Timestamp:
    """Midnight UTC of the billing date. A datetime (Airflow's logical date) counts by its UTC date."""
    if isinstance(billing_date, datetime):
        aware = billing_date if billing_date.tzinfo else billing_date.replace(tzinfo=UTC)
        billing_date = aware.astimezone(UTC).date()
    return pd.Timestamp(billing_date.year, billing_date.month, billing_date.day, tz="UTC")


def _type_filter(types: pd.Series, agreement_types: Sequence[str]) -> npt.NDArray[np.bool_]:
    if not agreement_types:
        return np.ones(len(types), dtype=bool)
    allowed = {t.strip().casefold() for t in agreement_types}
    return _fold_key(types).isin(allowed).to_numpy(dtype=bool)


def _holds(
    a: pd.DataFrame, billing_date: date, agreement_types: Sequence[str]
) -> dict[str, npt.NDArray[np.bool_]]:
    """Each condition of `live_mask` but the doubt, per row: True where it holds."""
    day = _billing_day(billing_date)
    next_day = day + pd.Timedelta(days=1)
    starts = a["effective_date"].fillna(a["agreement_start_date"])
    holds = {
        "agreement_cancelled": a["agreement_cancelled"].eq(False).fillna(False),
        "agreement_status": a["agreement_status"].eq("Active").fillna(False),
        "agreement_end_date": a["agreement_end_date"].isna() | (a["agreement_end_date"] >= day).fillna(False),
        "addition_status": a["addition_status"].isna() | a["addition_status"].eq("Active").fillna(False),
        "cancelled_date": a["cancelled_date"].isna() | (a["cancelled_date"] >= next_day).fillna(False),
        "starts": starts.isna() | (starts < next_day).fillna(False),
    }
    out = {name: held.to_numpy(dtype=bool) for name, held in holds.items()}
    out["agreement_type"] = _type_filter(a["agreement_type"], agreement_types)
    return out


def _doubt(a: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows with a field the rule reads present but unreadable: a date (`unreadable_dates`), or an
    addition status that is empty (ConnectWise's enum has no empty status; absent is NA)."""
    empty = a["addition_status"].eq("").fillna(False)
    return (a["unreadable_dates"].notna() | empty).to_numpy(dtype=bool)


def live_mask(
    additions: pd.DataFrame,
    billing_date: date,
    agreement_types: Sequence[str],
    *,
    doubt_is_live: bool = False,
) -> npt.NDArray[np.bool_]:
    """Boolean mask of the live rows of an `additions` frame: the one rule of what bills on a date
    (its conditions: `live_additions`). Whoever asks whether an addition is live asks this: reconcile
    (`live_additions`), the words of a key held for want of one (`_why_not_live`), and the push's
    re-read before it creates an addition (push.create_one).

    The doubt rule, the only statement of it: when in doubt, nothing is created or written. A row is
    in doubt when a field the rule reads is present but cannot be read: a date (`unreadable_dates`:
    an unreadable date is not an absent one) or an empty addition status. A row in doubt is not live:
    nothing bills on it and no quantity is written to it. A caller about to create an addition beside
    it passes `doubt_is_live=True`: a row in doubt then stands in the way as a live one does (its
    readable fields still rule it out when they say it does not bill), so nothing is created either.
    """
    holds = _holds(additions, billing_date, agreement_types)
    doubt = _doubt(additions)
    if doubt_is_live:  # an empty status is the doubt, not a status that rules the row out
        holds["addition_status"] = holds["addition_status"] | additions["addition_status"].eq("").fillna(
            False
        ).to_numpy(dtype=bool)
    live = np.ones(len(additions), dtype=bool)
    for held in holds.values():
        live &= held
    return live if doubt_is_live else live & ~doubt


def live_additions(
    additions: pd.DataFrame, billing_date: date, agreement_types: Sequence[str]
) -> pd.DataFrame:
    """The additions that bill on `billing_date` (ConnectWise reference, "Billing semantics").

    Live (docs/contract.md §2) = agreement_cancelled is False and agreement_status == "Active", agreement
    not ended before the billing date (agreement_end_date NA or on/after it), agreement type allowed,
    addition_status (the addition's own `agreementStatus`) "Active" or NA, cancelled_date NA or on a
    later UTC date than the billing date, and the addition started on or before the billing date:
    its effective_date, or when that is NA its agreement's start date; both NA = started. A row in
    doubt (an unreadable date, an empty addition status) is not live: see `live_mask`.
    Decisions:
    - agreement_types: case-insensitive, surrounding spaces ignored (operators type them by hand;
      ConnectWise shows the same name in several casings); empty = every type, NA type included.
      With a non-empty list an agreement without a type is not live.
    - statuses are compared exactly ("Active", the API's enum). agreement_cancelled NA (flag absent)
      = not live: we never bill on an agreement whose state we do not know.
    - dates compare by UTC date: an agreement ending on the billing date is still live on it; a
      cancelled_date on the billing date itself = not live (it stops that day).
    """
    return additions.loc[live_mask(additions, billing_date, agreement_types)]


class AdditionRecord(TypedDict):
    """One row of the additions frame (frames.SCHEMAS["additions"], with the key's `product` and
    `catalog_identifier`) as its cells: NA stays pd.NA, so each cell reads as what pandas holds."""

    addition_id: Any
    agreement_id: Any
    company_id: Any
    agreement_name: Any
    agreement_type: Any
    agreement_status: Any
    agreement_cancelled: Any
    agreement_start_date: Any
    agreement_end_date: Any
    product_identifier: Any
    quantity: Any
    unit_price: Any
    effective_date: Any
    cancelled_date: Any
    addition_status: Any
    unreadable_dates: Any
    issue: Any
    product: Any
    catalog_identifier: Any


def _why_not_live(row: AdditionRecord, billing_date: date, agreement_types: Sequence[str]) -> str:
    """Plain-language reasons an addition is not live (for the detail of `no_live_addition`): the
    conditions of `live_mask` its row fails, in the rule's own reading."""
    one = frames.conform(pd.DataFrame([dict(row)]), "additions")
    r = one.iloc[0]
    failed = {name for name, held in _holds(one, billing_date, agreement_types).items() if not held[0]}
    reasons = []
    if "agreement_cancelled" in failed:
        flag = r["agreement_cancelled"]
        reasons.append("agreement cancelled flag unknown" if pd.isna(flag) else "agreement cancelled")
    if "agreement_status" in failed:
        reasons.append(f"agreement status {_text(r['agreement_status'])}")
    if "agreement_type" in failed:
        reasons.append(f"agreement type {_text(r['agreement_type'])} not in agreement_types")
    if "agreement_end_date" in failed:
        reasons.append(f"agreement ended {r['agreement_end_date'].date().isoformat()}")
    if "addition_status" in failed:
        reasons.append(f"addition status {r['addition_status']}")
    if "cancelled_date" in failed:
        reasons.append(f"cancelled {r['cancelled_date'].date().isoformat()}")
    if "starts" in failed and not pd.isna(r["effective_date"]):
        reasons.append(f"effective only from {r['effective_date'].date().isoformat()}")
    elif "starts" in failed:
        reasons.append(f"no effective date, agreement starts {r['agreement_start_date'].date().isoformat()}")
    if not pd.isna(r["unreadable_dates"]):
        reasons.append(f"unreadable {r['unreadable_dates'].replace(',', ', ')}")
    return ", ".join(reasons) or "not live"
