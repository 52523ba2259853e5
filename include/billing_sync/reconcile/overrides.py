"""Standing overrides (`billing_overrides`): the quantity the sync aims for, before the guard.

`_attach_overrides` gives every key the active override of its (company, product), if any, as
columns `override_id`, `override_rule`, `override_quantity` and `override` (how it reads: "minimum
10 by Jane Doe"). `_aim` turns Huntress's count into the quantity the sync aims for (`decide`):

    minimum  max(Huntress count, quantity): contract minimums; a count above it bills as counted
    fixed    quantity, whatever Huntress counts (a missing or invalid count included: the count does
             not enter into it)
    exclude  the addition's own quantity: the key is `unchanged` whatever the sync sees, and its
             detail says why

Decisions:
- only company keys can carry an override (an organization no rule maps has no company).
- the aimed-for quantity goes through the guard like Huntress's count would: an override that makes
  a big change is held (`change_exceeds_limit`) as any other.
- a `minimum` needs a count: with a missing or invalid one the key keeps its reason (`invalid_usage`).
- an override whose quantity is not a whole non-negative number (the review page and
  `store.add_override` refuse those) is not applied; its key is decided as if it had none.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from billing_sync import frames

from .text import _qty

RULES = ("minimum", "fixed", "exclude")


def _attach_overrides(keys: pd.DataFrame, overrides: pd.DataFrame | None) -> pd.DataFrame:
    """`keys` with the override columns (NA where no active override applies)."""
    rules = frames.conform(overrides, "overrides") if overrides is not None else frames.empty("overrides")
    quantity = rules["quantity"]
    whole = quantity.isna() | ((quantity >= 0) & (quantity == quantity.round())).fillna(False)
    usable = (
        rules["rule"].isin(RULES).fillna(False) & (rules["rule"].eq("exclude") | quantity.notna()) & whole
    )
    rules = rules[usable.to_numpy(dtype=bool)].drop_duplicates(["company_id", "product"], keep="last")
    text = (
        rules["rule"]
        + np.where(rules["rule"].eq("exclude"), "", " " + rules["quantity"].map(_qty).astype("string"))
        + " by "
        + rules["created_by"].fillna("(unknown)")
        + " (override "
        + rules["override_id"].astype("string")
        + ")"
    )
    attach = pd.DataFrame(
        {
            "company_id": rules["company_id"].to_numpy(),
            "product": rules["product"].to_numpy(),
            "override_id": rules["override_id"].astype("Int64").to_numpy(),
            "override_rule": rules["rule"].to_numpy(),
            "override_quantity": rules["quantity"].to_numpy(),
            "override": text.to_numpy(),
        }
    ).astype(
        {
            "company_id": "Int64",
            "product": "string",
            "override_id": "Int64",
            "override_rule": "string",
            "override_quantity": "Float64",
            "override": "string",
        }
    )
    keys = keys.drop(
        columns=[c for c in attach.columns if c not in ("company_id", "product")], errors="ignore"
    )
    company = keys["kind"].isin(["company", "missing", "missing_product"]).to_numpy(dtype=bool)
    keys = keys.astype({"company_id": "Int64", "product": "string"}).merge(
        attach, on=["company_id", "product"], how="left"
    )
    for column in ("override_id", "override_rule", "override_quantity", "override"):
        keys.loc[~company, column] = pd.NA
    return keys


def _aim(
    keys: pd.DataFrame, usage: npt.NDArray[np.floating[Any]], old: npt.NDArray[np.floating[Any]]
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """(the quantity each key aims for, which keys an `exclude` leaves alone, which a `fixed` sets).

    `usage` is Huntress's count (NaN where there is none to bill from), `old` the addition's quantity.
    """
    if "override_rule" not in keys.columns:
        none = np.zeros(len(keys), dtype=bool)
        return usage, none, none
    rule = keys["override_rule"].fillna("").to_numpy(dtype=object)
    quantity = keys["override_quantity"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    excluded, fixed = rule == "exclude", rule == "fixed"
    with np.errstate(invalid="ignore"):
        whole_old = (old >= 0) & (old == np.floor(old))
    target = np.where(rule == "minimum", np.maximum(usage, quantity), usage)  # NaN count stays NaN
    target = np.where(fixed, quantity, target)
    # Left alone: it aims for what it holds, so it reads as unchanged (NaN without one whole quantity).
    target = np.where(excluded, np.where(whole_old, old, np.nan), target)
    return target, excluded, fixed
