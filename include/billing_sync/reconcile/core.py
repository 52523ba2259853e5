"""`reconcile`: the frames of one run → the `outcomes` frame; `summarize`: its counts."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, cast

import pandas as pd

from billing_sync import frames
from billing_sync.catalog import Products, lines
from billing_sync.config import Settings
from billing_sync.errors import ConfigError
from billing_sync.names import OUTCOMES, PUSH_OUTCOMES, REASON_CODES

from .decide import _decide
from .details import _describe
from .keys import (
    _add_missing_keys,
    _aggregate,
    _assign_keys,
    _attach_additions,
    _conform_with_issue,
    _invoice_organizations,
    _usage_rows,
)
from .live import live_mask
from .matching import match_organizations
from .money import _price_keys
from .overrides import _attach_overrides

if TYPE_CHECKING:
    from pandas.api.typing import NAType


def reconcile(
    usage: pd.DataFrame,
    organizations: pd.DataFrame,
    companies: pd.DataFrame,
    additions: pd.DataFrame,
    org_map: pd.DataFrame,
    settings: Settings,
    billing_date: date,
    overrides: pd.DataFrame | None = None,
    catalog: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The `outcomes` frame: one row per sync key, sorted by sync_key (see the package docstring).

    `overrides` (frame `overrides`: the tenant's active billing_overrides) set the quantity a key
    aims for before the guard (reconcile/overrides.py); `catalog` (frame `catalog`) gives the price
    of a key without an addition price (reconcile/money.py). Both optional: none applies, no price.

    Decisions:
    - product keys and catalog identifiers compare exactly (they are configuration, not user text).
      Two configured (product, item) lines with one catalog identifier raise ConfigError: one
      addition cannot carry two counts.
    - a product mapped to several catalog items (billing_sync.catalog) gives each item its own keys
      (`company:<id>:<product>:<ITEM>`): each item's addition is matched, guarded and priced on its
      own, all aiming for the product's one count (and its override, which is per product).
    - the mapping problem outranks the quantity problem: an unmapped/ambiguous organization with an
      invalid count is quarantined for the mapping (the detail mentions the bad count too).
    - a company with an invoice line but no row for a product (a line without that count) is
      `invalid_usage` ("missing count"), not `missing_from_invoice`, which is kept for companies
      none of whose organizations is on the invoice (matched orgs with invalid usage still count
      as "on the invoice"). missing_from_invoice applies whatever the addition's quantity, 0 too.
    - agreement_id/addition_id/previous_quantity are filled whenever the key has exactly one live
      addition, whatever the outcome; new_quantity only for change and unchanged.
    - huntress_quantity is NA when any contributing row is invalid (a partial sum would mislead).
    - a product absent or null on a line (docs/contract.md §2) counts as 0 where the company has no live
      addition for it, and makes the key `invalid_usage` where it has one (one or several), also
      when only one of several organizations of the company lacks the count: absence never lowers
      a quantity. An unmapped or ambiguous organization has no company, so no live addition.
    """
    mapped = _catalog(settings.products)  # (product, catalog identifier, line) (`catalog`: the items read)
    adds = _conform_with_issue(additions, "additions")
    comps = frames.conform(companies, "companies").drop_duplicates("company_id")
    rows = _usage_rows(usage, mapped)
    known = frames.conform(organizations, "organizations")
    invoice_orgs = _invoice_organizations(rows, known)
    matches = match_organizations(invoice_orgs, comps, frames.conform(org_map, "org_map"), known)
    rows = _assign_keys(rows, invoice_orgs, matches)
    keys = _aggregate(rows)
    live = adds.loc[live_mask(adds, billing_date, settings.agreement_types)]
    live = live.merge(mapped, left_on="product_identifier", right_on="catalog_identifier")
    live = live[live["company_id"].notna()]
    keys = _add_missing_keys(keys, live)
    keys = _attach_additions(keys, live)
    keys = _attach_overrides(keys, overrides)
    outcomes = _decide(keys, settings)
    outcomes = _describe(outcomes, rows, live, adds, matches, comps, settings, billing_date)
    outcomes = _price_keys(outcomes, live, catalog)
    outcomes = outcomes.merge(
        comps[["company_id", "name"]].rename(columns={"name": "company_name"}), how="left"
    )
    return frames.conform(outcomes.sort_values("sync_key", kind="stable"), "outcomes")


def _catalog(products: Products) -> pd.DataFrame:
    """One row per (product, catalog item) line: `product`, `catalog_identifier`, `line` (its name)."""
    try:
        configured = lines(products)
    except ValueError as exc:
        raise ConfigError(f"huntress_cw_billing_config.products: {exc}") from None
    catalog = pd.DataFrame(configured, columns=["product", "catalog_identifier", "line"], dtype="string")
    shared = catalog[catalog.duplicated("catalog_identifier", keep=False)]
    if len(shared):
        raise ConfigError(
            "huntress_cw_billing_config.products maps "
            f"{', '.join(shared['line'])} to the same catalog identifier; one addition cannot carry two counts"
        )
    return catalog


def summarize(outcomes: pd.DataFrame) -> dict[str, int]:
    """Counts per outcome (reconcile's and push's) and per reason code, all present, plus "total"."""
    by_outcome = outcomes["outcome"].value_counts(dropna=False).to_dict()
    by_reason = outcomes["reason_code"].dropna().value_counts().to_dict()
    counts = {name: int(by_outcome.get(name, 0)) for name in (*OUTCOMES, *PUSH_OUTCOMES)}
    counts.update({code: int(by_reason.get(code, 0)) for code in REASON_CODES})
    # Unknown values are kept rather than dropped, so the counts always add up to total.
    for name, n in by_outcome.items():
        # pandas-stubs type value_counts' keys as Hashable: here they are the outcome text, or NA.
        if not pd.isna(cast("str | NAType", name)) and name not in counts:
            counts[str(name)] = int(n)
    counts["total"] = len(outcomes)
    return counts
