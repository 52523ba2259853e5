"""Usage rows → one row per sync key: validity of each row, the key it feeds, the live additions of each key."""

from __future__ import annotations

import numpy as np
import pandas as pd

from billing_sync import frames

from .matching import MATCH_RULES
from .text import _text


def _conform_with_issue(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """`frames.conform`, keeping the optional `issue` column the GX checks add (NA = passed)."""
    issue = df["issue"] if "issue" in df.columns else pd.Series(pd.NA, index=df.index)
    out = frames.conform(df, name)
    out["issue"] = pd.array(issue.to_numpy(dtype=object), dtype="string")
    # A blank text names no failed expectation.
    out["issue"] = out["issue"].mask(out["issue"].str.strip().eq("").fillna(False))
    return out


def _usage_rows(usage: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """Configured-product usage rows with validity flags (see `_row_problem` for the reasons), one per
    (row, catalog item) of its product (`catalog`: core._catalog's lines), with `catalog_identifier`
    and `line`: a product kept in step on several items feeds a key per item."""
    rows = _conform_with_issue(usage, "usage")
    rows = rows[rows["product"].isin(catalog["product"])].reset_index(drop=True)
    has_org = rows["organization_id"].notna()
    rows["no_org"] = ~has_org.to_numpy(dtype=bool)
    same = rows.groupby(["organization_id", "product"], dropna=False)["line_id"].transform("size")
    rows["copies"] = np.where(has_org, same, 1)
    rows["has_issue"] = rows["issue"].notna().to_numpy(dtype=bool)
    # Absent or null on the line: no error by itself; 0 unless the company has a live addition for
    # the product (then invalid_usage, in _decide): absence never lowers a quantity.
    rows["absent"] = (rows["raw_quantity"].isna() | rows["raw_quantity"].eq("null")).to_numpy(dtype=bool)
    no_count = rows["quantity"].isna().to_numpy(dtype=bool) & ~rows["absent"].to_numpy(dtype=bool)
    rows["invalid"] = rows["no_org"] | (rows["copies"] > 1) | no_count | rows["has_issue"]
    # After the flags: an invoice line counted once per item is not a line seen twice (`copies`).
    lines = catalog[["product", "catalog_identifier", "line"]]
    return rows.merge(lines, on="product", how="inner", sort=False).reset_index(drop=True)


def _invoice_organizations(rows: pd.DataFrame, organizations: pd.DataFrame) -> pd.DataFrame:
    """Organizations on the invoice with the name/key to match on.

    Decision: the organizations frame is authoritative; an organization missing from it (or with
    no name there) is matched on the invoice line's organization_name, with no key.
    """
    on_invoice = rows[~rows["no_org"]].groupby("organization_id", sort=True)["organization_name"].first()
    known = organizations.dropna(subset=["organization_id"]).drop_duplicates("organization_id")
    known = known.set_index("organization_id").reindex(on_invoice.index)
    return pd.DataFrame(
        {
            "organization_id": on_invoice.index.astype("Int64"),
            "name": known["name"].fillna(on_invoice).to_numpy(),
            "key": known["key"].to_numpy(),
            "account_id": known["account_id"].to_numpy(),
            "unreadable": known["unreadable"].to_numpy(),
        }
    ).astype({"name": "string", "key": "string", "account_id": "Int64", "unreadable": "string"})


def _assign_keys(rows: pd.DataFrame, invoice_orgs: pd.DataFrame, matches: pd.DataFrame) -> pd.DataFrame:
    rows = rows.merge(
        matches[["organization_id", "company_id", "match_rule", "status"]], on="organization_id", how="left"
    )
    names = invoice_orgs.set_index("organization_id")["name"]
    rows["org_name"] = rows["organization_id"].map(names).astype("string").fillna(rows["organization_name"])
    matched = rows["status"].eq("matched").fillna(False).to_numpy(dtype=bool)
    no_org = rows["no_org"].to_numpy(dtype=bool)
    rows["kind"] = np.select([no_org, matched], ["line", "company"], "organization")
    key_id = np.select(
        [no_org, matched],
        [rows["line_id"].astype("string").fillna("unknown"), rows["company_id"].astype("string")],
        rows["organization_id"].astype("string"),
    )
    rows["sync_key"] = rows["kind"] + ":" + key_id + ":" + rows["line"].astype(object)
    return rows


def _aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows → one row per sync key (sum, invalid count, contributing organizations)."""
    keys = rows.groupby("sync_key", sort=False).agg(
        kind=("kind", "first"),
        company_id=("company_id", "first"),
        organization_id=("organization_id", "first"),
        product=("product", "first"),
        catalog_identifier=("catalog_identifier", "first"),
        line=("line", "first"),
        status=("status", "first"),
        n_invalid=("invalid", "sum"),
        n_absent=("absent", "sum"),
        quantity=("quantity", "sum"),  # absent rows add nothing (NA is skipped)
        n_orgs=("organization_id", "nunique"),
        organization_names=("org_name", "first"),
        match_rule=("match_rule", "first"),
    )
    keys = keys.reset_index()
    keys["organization_ids"] = keys["organization_id"].astype("string")
    # Several organizations feed one company key: rare, so the joins run in Python on those only.
    multi = keys.loc[keys["n_orgs"] > 1, "sync_key"]
    if len(multi):
        part = rows[rows["sync_key"].isin(multi)].drop_duplicates(["sync_key", "organization_id"])
        part = part.sort_values(["sync_key", "organization_id"])
        joined = part.groupby("sync_key").agg(
            organization_ids=("organization_id", lambda s: ",".join(map(str, s))),
            organization_names=("org_name", lambda s: "; ".join(_text(v, quote=False) for v in s)),
            match_rule=("match_rule", lambda s: ",".join(r for r in MATCH_RULES if r in set(s))),
        )
        idx = keys["sync_key"].isin(multi).to_numpy()
        joined = joined.reindex(keys.loc[idx, "sync_key"])
        for column in joined.columns:
            keys.loc[idx, column] = joined[column].to_numpy(dtype=object)
    return keys


def _add_missing_keys(keys: pd.DataFrame, live: pd.DataFrame) -> pd.DataFrame:
    """Company keys for (company, catalog item) pairs with live additions but no usage row."""
    pairs = live[["company_id", "product", "catalog_identifier", "line"]].drop_duplicates()
    pairs["sync_key"] = "company:" + pairs["company_id"].astype("string") + ":" + pairs["line"]
    pairs = pairs[~pairs["sync_key"].isin(keys["sync_key"])]
    on_invoice = keys.loc[keys["kind"] == "company", "company_id"]
    pairs["kind"] = np.where(pairs["company_id"].isin(on_invoice), "missing_product", "missing")
    pairs["n_invalid"] = pairs["n_absent"] = 0
    return pd.concat([keys, pairs], ignore_index=True)


def _attach_additions(keys: pd.DataFrame, live: pd.DataFrame) -> pd.DataFrame:
    """Each company key's live additions of its catalog item: one is the addition it syncs; none or
    several are its reason to be held (decide), counted per item, not per product."""
    pair = ["company_id", "product", "catalog_identifier"]
    per_pair = live.groupby(pair).agg(
        n_live=("addition_id", "size"),
        addition_id=("addition_id", "first"),
        agreement_id=("agreement_id", "first"),
        previous_quantity=("quantity", "first"),
        addition_issue=("issue", "first"),
    )
    keys = keys.merge(per_pair.reset_index(), on=pair, how="left")
    keys["n_live"] = keys["n_live"].fillna(0).astype("int64")
    several = keys["n_live"] != 1
    keys.loc[several, ["addition_id", "agreement_id", "previous_quantity", "addition_issue"]] = pd.NA
    return keys
