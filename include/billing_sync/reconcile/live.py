"""What bills on a date: which additions are live on the billing date, and why one is not."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

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


def live_mask(
    additions: pd.DataFrame, billing_date: date, agreement_types: Sequence[str]
) -> npt.NDArray[np.bool_]:
    """Boolean mask of the live rows of an `additions` frame (see `live_additions`)."""
    a = additions
    day = _billing_day(billing_date)
    next_day = day + pd.Timedelta(days=1)
    not_cancelled = a["agreement_cancelled"].eq(False).fillna(False)
    not_ended = a["agreement_end_date"].isna() | (a["agreement_end_date"] >= day).fillna(False)
    agreement_ok = not_cancelled & a["agreement_status"].eq("Active").fillna(False) & not_ended
    status_ok = a["addition_status"].isna() | a["addition_status"].eq("Active").fillna(False)
    cancelled_ok = a["cancelled_date"].isna() | (a["cancelled_date"] >= next_day).fillna(False)
    starts = a["effective_date"].fillna(a["agreement_start_date"])
    effective_ok = starts.isna() | (starts < next_day).fillna(False)
    dates_ok = a["unreadable_dates"].isna()
    mask = agreement_ok & status_ok & cancelled_ok & effective_ok & dates_ok
    return mask.to_numpy(dtype=bool) & _type_filter(a["agreement_type"], agreement_types)


def live_additions(
    additions: pd.DataFrame, billing_date: date, agreement_types: Sequence[str]
) -> pd.DataFrame:
    """The additions that bill on `billing_date` (ConnectWise reference, "Billing semantics").

    Live (docs/contract.md §2) = agreement_cancelled is False and agreement_status == "Active", agreement
    not ended before the billing date (agreement_end_date NA or on/after it), agreement type allowed,
    addition_status (the addition's own `agreementStatus`) "Active" or NA, cancelled_date NA or on a
    later UTC date than the billing date, and the addition started on or before the billing date:
    its effective_date, or when that is NA its agreement's start date; both NA = started. A date
    that is present but unreadable (`unreadable_dates`) = not live: it is not an absent date.
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


def _why_not_live(row: Mapping[str, Any], billing_date: date, agreement_types: Sequence[str]) -> str:
    """Plain-language reasons an addition is not live (for the detail of `no_live_addition`)."""
    day = _billing_day(billing_date)
    reasons = []
    flag = row["agreement_cancelled"]
    if pd.isna(flag) or bool(flag):
        reasons.append("agreement cancelled flag unknown" if pd.isna(flag) else "agreement cancelled")
    if pd.isna(row["agreement_status"]) or row["agreement_status"] != "Active":
        reasons.append(f"agreement status {_text(row['agreement_status'])}")
    if not _type_filter(pd.Series([row["agreement_type"]], dtype="string"), agreement_types)[0]:
        reasons.append(f"agreement type {_text(row['agreement_type'])} not in agreement_types")
    ended = row["agreement_end_date"]
    if not pd.isna(ended) and ended.normalize() < day:
        reasons.append(f"agreement ended {ended.date().isoformat()}")
    if not (pd.isna(row["addition_status"]) or row["addition_status"] == "Active"):
        reasons.append(f"addition status {row['addition_status']}")
    cancelled, effective, start = row["cancelled_date"], row["effective_date"], row["agreement_start_date"]
    if not pd.isna(cancelled) and cancelled.normalize() <= day:
        reasons.append(f"cancelled {cancelled.date().isoformat()}")
    if not pd.isna(effective) and effective.normalize() > day:
        reasons.append(f"effective only from {effective.date().isoformat()}")
    elif pd.isna(effective) and not pd.isna(start) and start.normalize() > day:
        reasons.append(f"no effective date, agreement starts {start.date().isoformat()}")
    if not pd.isna(row["unreadable_dates"]):
        reasons.append(f"unreadable {row['unreadable_dates'].replace(',', ', ')}")
    return ", ".join(reasons) or "not live"
