"""The guard and the rules that give each sync key exactly one outcome (and a reason when held)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from billing_sync.config import Settings

from .overrides import _aim


def _decide(keys: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    kind = keys["kind"].to_numpy(dtype=object)
    n_live = keys["n_live"].to_numpy(dtype="int64")
    # A product absent (or null) on a line of a company with a live addition for it is no count:
    # taking it as 0 would lower the quantity from a gap in the data (docs/contract.md §2).
    absent_live = (keys["n_absent"].to_numpy(dtype="int64") > 0) & (n_live > 0)
    valid = (keys["n_invalid"].to_numpy(dtype="int64") == 0) & ~absent_live
    usage = keys["quantity"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    usage = np.where(valid & np.isin(kind, ["company", "organization"]), usage, np.nan)
    old = keys["previous_quantity"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    ambiguous = keys["status"].eq("ambiguous").fillna(False).to_numpy(dtype=bool)
    # The quantity the sync aims for: Huntress's count, unless an override says otherwise (before the guard).
    target, excluded, fixed = _aim(keys, usage, old)

    diff = np.abs(target - old)
    with np.errstate(invalid="ignore"):
        addition_ok = (old >= 0) & (old == np.floor(old)) & keys["addition_issue"].isna().to_numpy(dtype=bool)
        over_limit = (diff > settings.max_change_units) & (diff > settings.max_change_ratio * old)
        to_zero = (target == 0) & (old > 0) & (not settings.allow_drop_to_zero)
    reason = np.select(
        [
            excluded,
            kind == "line",
            (kind == "organization") & valid & (usage == 0),
            (kind == "organization") & ambiguous,
            kind == "organization",
            (kind == "missing_product") & ~fixed,
            (kind == "missing") & ~fixed,
            ~valid & ~fixed,
            (n_live == 0) & (target > 0),
            n_live == 0,
            n_live > 1,
            ~addition_ok,
            target == old,
            over_limit | to_zero,
        ],
        [
            "",
            "invalid_usage",
            "",
            "ambiguous_company_match",
            "unmapped_organization",
            "invalid_usage",
            "missing_from_invoice",
            "invalid_usage",
            "no_live_addition",
            "",
            "duplicate_addition",
            "invalid_addition",
            "",
            "change_exceeds_limit",
        ],
        "",
    )
    not_applicable = ((kind == "organization") & valid & (usage == 0)) | (
        (kind == "company") & (valid | fixed) & (n_live == 0) & (target == 0) & ~excluded
    )
    unchanged = (reason == "") & ~not_applicable & ((target == old) | excluded)
    outcome = np.select(
        [reason != "", not_applicable, unchanged], ["quarantined", "not_applicable", "unchanged"], "change"
    )
    out = keys.assign(
        outcome=outcome,
        reason_code=pd.array(_none_where(reason == "", reason), dtype="string"),
        # pandas-stubs take only float arrays for "Float64"; pandas takes objects too (None → <NA>).
        huntress_quantity=pd.array(  # type: ignore[call-overload]
            _none_where(np.isnan(usage), usage), dtype="Float64"
        ).astype("Int64"),
    )
    pushable = np.isin(outcome, ["change", "unchanged"])
    # What the guard judged (the aimed-for quantity): the detail and the amount at stake read it.
    out["target"] = pd.array(  # type: ignore[call-overload]
        _none_where(np.isnan(target), target), dtype="Float64"
    ).astype("Int64")
    out["new_quantity"] = out["target"].where(pushable, pd.NA)
    return out


def _none_where(mask: npt.NDArray[np.bool_], values: npt.NDArray[Any]) -> npt.NDArray[np.object_]:
    """`values` as Python objects, None where `mask` holds: what `np.where(mask, None, values)` gives
    (numpy's stubs take no bare None there)."""
    out = values.astype(object)
    out[mask] = None
    return out
