"""The words of the details: what a change does, and why a key is held and what was seen.

Vectorized for changes; per key for quarantined keys, which are few.
"""

from __future__ import annotations

import json
import math
from datetime import date
from typing import Any, TypedDict, cast

import numpy as np
import pandas as pd

from billing_sync import frames
from billing_sync.catalog import lines
from billing_sync.config import Settings
from billing_sync.names import REASON_CODES

from .live import AdditionRecord, _why_not_live
from .matching import LOOSELY
from .text import _qty, _text


def _describe(
    out: pd.DataFrame,
    rows: pd.DataFrame,
    live: pd.DataFrame,
    adds: pd.DataFrame,
    matches: pd.DataFrame,
    comps: pd.DataFrame,
    settings: Settings,
    billing_date: date,
) -> pd.DataFrame:
    """Detail text: vectorized for `change`, per row for quarantined keys (few). Each key carries its
    own `catalog_identifier` (keys.py): a product may keep several items in step."""
    # How a key's product reads: the product, or "edr HUNTRESS-EDR-INFO" where the product keeps
    # several items in step, so the two changes of one company's product read apart.
    single = (out["line"] == out["product"]).fillna(True).to_numpy(dtype=bool)
    item = out["product"].astype(object) + " " + out["catalog_identifier"].astype(object).fillna("")
    out["label"] = np.where(single, out["product"].astype(object), item.to_numpy(dtype=object))
    change = out["outcome"].to_numpy(dtype=object) == "change"
    detail = np.full(len(out), None, dtype=object)
    if change.any():
        old = out.loc[change, "previous_quantity"].astype("float64").to_numpy()
        new = out.loc[change, "new_quantity"].astype("int64").to_numpy()  # Huntress's, or an override's
        delta = pd.Series(new - old.astype("int64")).map("{:+d}".format).str.replace("-", "−")
        product = out.loc[change, "label"].to_numpy(dtype=object)
        detail[change] = (
            product
            + " "
            + pd.Series(old.astype("int64")).astype(str).to_numpy(dtype=object)
            + " → "
            + pd.Series(new).astype(str).to_numpy(dtype=object)
            + " ("
            + delta.to_numpy(dtype=object)
            + ")"
        )
    held = np.flatnonzero(out["outcome"].to_numpy(dtype=object) == "quarantined")
    if len(held):
        records = cast("list[_HeldKey]", _records(out.iloc[held][_DETAIL_COLUMNS]))
        ctx = _Context(records, rows, live, adds, matches, comps, settings, billing_date)
        detail[held] = [ctx.detail(k) for k in records]
    if "override" in out.columns:
        _override_details(out, detail)
    out["detail"] = pd.array(detail, dtype="string")
    return out


def _override_details(out: pd.DataFrame, detail: np.ndarray) -> None:
    """Say that an override decided the quantity, and whose it is (keys with one are few)."""
    for i in np.flatnonzero(out["override"].notna().to_numpy(dtype=bool)):
        r = out.iloc[i]
        rule, said = r["override_rule"], f"{r['override']}; Huntress {_qty(r['huntress_quantity'])}"
        if rule == "exclude" and r["outcome"] == "unchanged":
            detail[i] = (
                f"{r['product']} left alone ({said}, ConnectWise {_qty(r['previous_quantity'])}): "
                "the sync never touches this company and product"
            )
        elif r["outcome"] == "unchanged":
            detail[i] = f"{r['product']} {_qty(r['new_quantity'])}: quantity from {said}"
        elif detail[i] is None:
            detail[i] = f"quantity from {said}"
        else:
            detail[i] = f"{detail[i]}; quantity from {said}"


# What the detail text reads, so only these columns are turned into Python objects.
_DETAIL_COLUMNS = [
    "sync_key",
    "kind",
    "reason_code",
    "product",
    "label",
    "catalog_identifier",
    "company_id",
    "organization_id",
    "organization_names",
    "quantity",
    "huntress_quantity",
    "previous_quantity",
    "n_live",
    "addition_issue",
    "n_invalid",
    "n_absent",
    "target",
]
_ROW_COLUMNS = [
    "sync_key",
    "no_org",
    "line_id",
    "organization_id",
    "org_name",
    "product",
    "copies",
    "quantity",
    "raw_quantity",
    "has_issue",
    "issue",
    "invalid",
    "absent",
]
_ADDITION_COLUMNS = [*frames.SCHEMAS["additions"], "product", "catalog_identifier"]


class _HeldKey(TypedDict):
    """A quarantined key's `_DETAIL_COLUMNS` as its cells (NA stays pd.NA)."""

    sync_key: str
    kind: Any
    reason_code: str
    product: Any
    label: Any
    catalog_identifier: Any
    company_id: Any
    organization_id: Any
    organization_names: Any
    quantity: Any
    huntress_quantity: Any
    previous_quantity: Any
    n_live: Any
    addition_issue: Any
    n_invalid: Any
    n_absent: Any
    target: Any


class _UsageRow(TypedDict):
    """A usage row's `_ROW_COLUMNS` as its cells (NA stays pd.NA)."""

    sync_key: str
    no_org: Any
    line_id: Any
    organization_id: Any
    org_name: Any
    product: Any
    copies: Any
    quantity: Any
    raw_quantity: Any
    has_issue: Any
    issue: Any
    invalid: Any
    absent: Any


class _Context:
    """Lookups for the detail text of quarantined keys, restricted to those keys."""

    def __init__(
        self,
        held: list[_HeldKey],
        rows: pd.DataFrame,
        live: pd.DataFrame,
        adds: pd.DataFrame,
        matches: pd.DataFrame,
        comps: pd.DataFrame,
        settings: Settings,
        billing_date: date,
    ) -> None:
        self.settings, self.billing_date = settings, billing_date
        keys = {k["sync_key"] for k in held}
        bad = rows[(rows["invalid"] | rows["absent"]) & rows["sync_key"].isin(keys)]
        self.problems: dict[str, list[str]] = {}  # invalid rows
        self.absent: dict[str, list[str]] = {}  # rows absent or null on the line, valid by themselves
        for r in cast("list[_UsageRow]", _records(bad[_ROW_COLUMNS])):
            (self.problems if r["invalid"] else self.absent).setdefault(r["sync_key"], []).append(
                _row_problem(r)
            )
        unmatched = matches[matches["status"] != "matched"].set_index("organization_id")
        self.match = unmatched["detail"].to_dict()
        self.candidates = unmatched["candidate_company_ids"].to_dict()
        self.names = comps.set_index("company_id")["name"]
        listed = _pairs(
            held, ("duplicate_addition", "invalid_addition", "missing_from_invoice", "invalid_usage")
        )
        self.live = _group(live.merge(listed))
        catalog = pd.DataFrame(
            [(line.product, line.catalog_identifier) for line in lines(settings.products)],
            columns=["product", "product_identifier"],
        ).assign(catalog_identifier=lambda c: c["product_identifier"])
        self.all = _group(adds.merge(catalog).merge(_pairs(held, ("no_live_addition",))))
        missing = _pairs(held, ("invalid_usage",))
        orgs = rows[~rows["no_org"]].merge(missing[["company_id"]].drop_duplicates())
        self.orgs_of = (
            orgs.groupby("company_id")["organization_id"]
            .agg(lambda s: ",".join(map(str, sorted(set(s)))))
            .to_dict()
        )

    def detail(self, k: _HeldKey) -> str:
        code = k["reason_code"]
        catalog = str(k["catalog_identifier"])
        if code in ("unmapped_organization", "ambiguous_company_match"):
            return self._organization_detail(k)
        if code == "invalid_usage":
            return self._invalid_usage_detail(k, catalog)
        if code == "no_live_addition":
            return self._no_live_detail(k, catalog)
        if code == "duplicate_addition":
            return f"{k['n_live']} live {catalog} additions: {self.listing(k)}"
        if code == "invalid_addition":
            return self._invalid_addition_detail(k)
        if code == "missing_from_invoice":
            return f"no organization of this company is on the invoice; live {catalog}: {self.listing(k)}"
        if code == "change_exceeds_limit":
            return _guard_text(k["label"], k["previous_quantity"], k["target"], self.settings)
        return REASON_CODES[code]

    def _organization_detail(self, k: _HeldKey) -> str:
        """unmapped_organization / ambiguous_company_match: the match's words (and candidates)."""
        org = k["organization_id"]
        problems = "; ".join(self.problems.get(k["sync_key"], []))
        text = f"organization {org} {_text(k['organization_names'])}: {self.match.get(org)}"
        # A never-guess (loose) ambiguity already names each candidate in the match's words.
        if k["reason_code"] == "ambiguous_company_match" and LOOSELY not in str(self.match.get(org)):
            ids = str(self.candidates.get(org) or "").split(",")
            text += " (" + ", ".join(f"{c} {_text(self.names.get(int(c)))}" for c in ids if c) + ")"
        usage = f"usage also invalid: {problems}" if problems else f"{k['product']} usage {k['quantity']}"
        return f"{text}; {usage}"

    def _invalid_usage_detail(self, k: _HeldKey, catalog: str) -> str:
        if k["kind"] == "missing_product":
            return (
                f"organizations {self.orgs_of.get(k['company_id'])} of this company are on the invoice but carry no "
                f"{k['product']} count (live {catalog}: {self.listing(k)})"
            )
        text = "; ".join(self.problems.get(k["sync_key"], []) + self.absent.get(k["sync_key"], []))
        if k["n_absent"] and k["n_live"]:
            text += (
                f" (absent or null counts as 0 only where the company has no live {catalog} addition; "
                f"live: {self.listing(k)})"
            )
        return text

    def _no_live_detail(self, k: _HeldKey, catalog: str) -> str:
        product = k["product"]
        text = f"{_qty(k['huntress_quantity'])} {product} units on the invoice, no live {catalog} addition"
        others = self.all.get((k["company_id"], k["catalog_identifier"]), [])
        if others:
            text += "; not live: " + ", ".join(
                f"addition {a['addition_id']} on agreement {a['agreement_id']} {_text(a['agreement_name'])} "
                f"({_why_not_live(a, self.billing_date, self.settings.agreement_types)})"
                for a in others
            )
        return text

    def _invalid_addition_detail(self, k: _HeldKey) -> str:
        old = k["previous_quantity"]
        why = []
        if pd.isna(old) or old < 0 or not float(old).is_integer():
            why.append(f"the ConnectWise quantity ({_qty(old)}) is not a whole non-negative number")
        if not pd.isna(k["addition_issue"]):
            why.append(f"fails the check “{k['addition_issue']}”")
        return (
            f"{self.listing(k)}: {'; '.join(why)}, so no change can be computed "
            f"({k['product']} usage {_text(k['huntress_quantity'], quote=False)})"
        )

    def listing(self, k: _HeldKey) -> str:
        return ", ".join(
            f"addition {a['addition_id']} on agreement {a['agreement_id']} {_text(a['agreement_name'])} "
            f"(quantity {_qty(a['quantity'])})"
            for a in self.live.get((k["company_id"], k["catalog_identifier"]), [])
        )


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, much faster than DataFrame.to_dict for extension dtypes (NA stays pd.NA). Any
    frame's: its callers name the record (`_HeldKey`, `_UsageRow`, `AdditionRecord`)."""
    columns = list(df.columns)
    arrays = [df[c].to_numpy(dtype=object) for c in columns]
    return [dict(zip(columns, values, strict=True)) for values in zip(*arrays, strict=True)]


def _pairs(held: list[_HeldKey], codes: tuple[str, ...]) -> pd.DataFrame:
    """(company_id, product, catalog_identifier) of the held company keys with one of `codes`."""
    pairs = [
        (k["company_id"], k["product"], k["catalog_identifier"])
        for k in held
        if k["reason_code"] in codes and not pd.isna(k["company_id"])
    ]
    return pd.DataFrame(pairs, columns=["company_id", "product", "catalog_identifier"]).astype(
        {"company_id": "Int64", "product": "string", "catalog_identifier": "string"}
    )


def _group(additions: pd.DataFrame) -> dict[tuple[int, str], list[AdditionRecord]]:
    """Additions by (company, catalog identifier): what one key lists."""
    grouped: dict[tuple[int, str], list[AdditionRecord]] = {}
    records = cast("list[AdditionRecord]", _records(additions.sort_values("addition_id")[_ADDITION_COLUMNS]))
    for a in records:
        grouped.setdefault((a["company_id"], a["catalog_identifier"]), []).append(a)
    return grouped


def _row_problem(r: _UsageRow) -> str:
    """Which org, the raw value, and why a usage row is invalid."""
    who = (
        f"line {_text(r['line_id'], quote=False)} has no organization id"
        if r["no_org"]
        else f"organization {r['organization_id']} {_text(r['org_name'])}"
    )
    why = []
    if r["copies"] > 1:
        why.append(f"appears on {r['copies']} invoice lines")
    if pd.isna(r["quantity"]):
        why.append(_raw_problem(r["raw_quantity"]))
    if r["has_issue"]:
        why.append(f"fails the check “{r['issue']}”")
    raw = "absent" if pd.isna(r["raw_quantity"]) else r["raw_quantity"]
    return f"{who}, {r['product']} = {raw}" + (f": {', '.join(why)}" if why else "")


def _raw_problem(raw: Any) -> str:
    """Why Huntress's raw JSON text is not a count (frames.parse_count refused it)."""
    if pd.isna(raw):
        return "absent from the invoice line"
    try:
        value = json.loads(raw)
    except ValueError:
        return "not a number"
    if value is None:
        return "null on the invoice line"
    if isinstance(value, bool):
        return "a boolean, not a count"
    if isinstance(value, str):
        return "a string, not a number"
    if isinstance(value, int | float) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return "not a finite number"
        if value < 0:
            return "negative"
        if isinstance(value, float):
            return "fractional" if value != int(value) else "a decimal number, not an integer"
        if value > frames.MAX_USAGE:
            return f"above the plausible maximum {frames.MAX_USAGE}"
        return "not accepted as a count"
    return "not a number"


def _guard_text(product: str, old: float, new: int, settings: Settings) -> str:
    old_i, new_i = int(old), int(new)
    delta = f"{new_i - old_i:+d}".replace("-", "−")
    pct = f", {(new_i - old_i) / old_i * 100:+.1f}%".replace("-", "−") if old_i else ""
    head = f"{product} {old_i} → {new_i} ({delta}{pct})"
    reasons = []
    diff = abs(new_i - old_i)
    if diff > settings.max_change_units and diff > settings.max_change_ratio * old_i:
        reasons.append(
            f"exceeds max_change_units={settings.max_change_units} and max_change_ratio={settings.max_change_ratio:g}"
        )
    if new_i == 0 and old_i > 0 and not settings.allow_drop_to_zero:
        reasons.append(f"drop from {old_i} to 0 needs allow_drop_to_zero")
    return f"{head} {'; '.join(reasons)}"
