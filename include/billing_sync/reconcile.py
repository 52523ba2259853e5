"""Reconciliation: Huntress usage × ConnectWise additions → one outcome per sync key.

Pure functions on the frames of `frames.py`: no I/O, no Airflow, no GX. Everything that touches
every row is vectorized (merges, groupbys, numpy); Python loops only build the detail text of
quarantined keys, which are few, so 100k usage rows against 100k additions stay well under 2 s.

A sync key is one of
    company:<company_id>:<product>        usage of the organizations matched to a company
    organization:<organization_id>:<product>  usage of an organization no rule maps (or ambiguous)
    line:<line_id>:<product>              a usage line without an organization id
Every usage row of a configured product feeds exactly one key; a (company, product) with live
additions but no usage row gets a company key too (`missing_from_invoice`).

Decisions where CONTRACTS.md is silent are marked "Decision:" in the docstrings below.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from billing_sync import frames
from billing_sync.config import ConfigError, Settings

# Outcomes reconcile assigns (the push step later turns `change` into updated/planned/failed).
OUTCOMES: dict[str, str] = {
    "change": "the addition's quantity differs from Huntress usage and passes the guard; to be pushed",
    "unchanged": "the addition already carries the Huntress quantity",
    "not_applicable": "zero usage and nothing to update",
    "quarantined": "held for a person; reason_code says why",
}
# Outcomes the push step writes over `change`; listed so run counts keep a stable shape.
PUSH_OUTCOMES: dict[str, str] = {
    "updated": "the new quantity was written to ConnectWise",
    "planned": "dry run / report only: the change would have been written",
    "failed": "the write did not succeed (see the quarantine row)",
}
# The contract's outcomes (CONTRACTS.md §3), in its order: how reports and alerts list them.
CONTRACT_OUTCOMES = ("updated", "unchanged", "planned", "not_applicable", "quarantined")

REASON_CODES: dict[str, str] = {
    "unmapped_organization": "usage for an organization that no rule maps to a company",
    "ambiguous_company_match": "a rule found more than one company",
    "no_live_addition": "mapped company, but no live addition for the product",
    "duplicate_addition": "more than one live addition for the company and product",
    "invalid_usage": "a usage count that is missing, negative, fractional or not a number",
    "change_exceeds_limit": "the change trips the guard (or a drop to zero not allowed)",
    "missing_from_invoice": "a live addition of a mapped product whose company has no line on the invoice",
    "changed_since_read": "the addition's quantity changed in ConnectWise between read and write",
    "push_rejected": "ConnectWise refused the write (4xx), or it still failed after retries",
    # Extension of the contract's nine: the ConnectWise side of the comparison is unusable.
    "invalid_addition": "the single live addition's quantity is missing, negative or fractional",
}

REASON_HELP: dict[str, str] = {
    "unmapped_organization": "Add a billing_org_map row for the organization, or give the ConnectWise "
    "company an identifier equal to the organization's key.",
    "ambiguous_company_match": "Add a billing_org_map row naming the right company, or make the "
    "identifiers/names of the candidate companies distinct.",
    "no_live_addition": "Add the product as an addition on the company's active agreement (the sync never "
    "creates one), or map the organization to the company that has it.",
    "duplicate_addition": "Cancel or end all but one of the company's live additions for the product, or "
    "restrict agreement_types so only one agreement counts.",
    "invalid_usage": "Check the organization's usage in Huntress; the key syncs on the next run once the "
    "invoice line carries a whole, non-negative count.",
    "change_exceeds_limit": "Confirm the change is real, then update the addition by hand or raise "
    "max_change_units / max_change_ratio (or set allow_drop_to_zero) and re-run.",
    "missing_from_invoice": "Confirm the company left Huntress and end the addition, or map its Huntress "
    "organization to the company.",
    "changed_since_read": "Someone edited the addition during the run; re-run the sync to compare again.",
    "push_rejected": "Read the ConnectWise error in the detail (permissions, closed agreement), fix it and "
    "re-run.",
    "invalid_addition": "Fix the addition's quantity in ConnectWise to a whole, non-negative number and "
    "re-run.",
}

_REASON_RANK = {code: i for i, code in enumerate(REASON_CODES)}


def reason_rank(code: str) -> int:
    """Position of a reason code in the contract's order (REASON_CODES); unknown codes come last."""
    return _REASON_RANK.get(code, len(_REASON_RANK))


MATCH_RULES = ("org_map", "key", "name")


# --------------------------------------------------------------------------------------------
# Names


class _FoldTable(dict[int, str | None]):
    """`str.translate` table built lazily: a hit is a C-level dict lookup, a miss asks unicodedata once."""

    def __missing__(self, codepoint: int) -> str | None:
        char = chr(codepoint)
        value: str | None
        if char.isspace():
            value = " "
        elif unicodedata.category(char)[0] in "PSC":
            # Punctuation, symbols and invisible controls vanish: "A.B.C." is "ABC", "Acme, Inc." is "Acme Inc".
            value = None
        else:
            value = char
        self[codepoint] = value
        return value


_FOLD = _FoldTable()


def normalize_name(s: str) -> str:
    """Fold case, spacing and punctuation: 'ACME,  Inc.' → 'acme inc'.

    NFKC (full-width and compatibility forms become plain), casefold, punctuation, symbols and control
    characters dropped, whitespace collapsed.
    Decisions: punctuation is dropped, not turned into a space ("Acme-Corp" = "AcmeCorp" ≠ "Acme Corp"),
    the plain reading of "punctuation folded" and what the project's test oracles do; accents are
    kept ('Café' ≠ 'Cafe'): they distinguish real names in many languages.
    """
    # Symbols go before NFKC too, or '™' would become the letters 'TM'.
    text = unicodedata.normalize("NFKC", s.translate(_FOLD))
    text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.translate(_FOLD).split())


def normalize_names(values: pd.Series) -> pd.Series:
    """`normalize_name` over a Series (string dtype): NA, and names that fold to '', become NA."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    folded = np.array([normalize_name(str(u)) or None for u in uniques] + [None], dtype=object)
    # Sentinel -1 picks the trailing None.
    return pd.Series(folded[codes], index=values.index, dtype="string")


def _fold_key(values: pd.Series) -> pd.Series:
    """Keys/identifiers compared case-insensitively (surrounding spaces ignored); '' never matches."""
    folded = values.astype("string").str.strip().str.casefold()
    return folded.mask(folded == "")


# --------------------------------------------------------------------------------------------
# Live additions


def _billing_day(billing_date: date) -> pd.Timestamp:
    """Midnight UTC of the billing date. A datetime (Airflow's logical date) counts by its UTC date."""
    if isinstance(billing_date, datetime):
        aware = billing_date if billing_date.tzinfo else billing_date.replace(tzinfo=UTC)
        billing_date = aware.astimezone(UTC).date()
    return pd.Timestamp(billing_date.year, billing_date.month, billing_date.day, tz="UTC")


def _type_filter(types: pd.Series, agreement_types: Sequence[str]) -> np.ndarray:
    if not agreement_types:
        return np.ones(len(types), dtype=bool)
    allowed = {t.strip().casefold() for t in agreement_types}
    return _fold_key(types).isin(allowed).to_numpy(dtype=bool)


def live_mask(additions: pd.DataFrame, billing_date: date, agreement_types: Sequence[str]) -> np.ndarray:
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

    Live (CONTRACTS §2) = agreement_cancelled is False and agreement_status == "Active", agreement
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


# --------------------------------------------------------------------------------------------
# Organization → company


def match_organizations(
    organizations: pd.DataFrame, companies: pd.DataFrame, org_map: pd.DataFrame,
    known: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per distinct organization id: which company it maps to, and by which rule.

    Columns: organization_id, company_id (Int64, NA when none), match_rule (org_map|key|name|NA),
    status (matched|unmapped|ambiguous), candidate_company_ids (ascending, comma-separated, for
    ambiguous), detail (why, for unmapped and ambiguous; NA when matched).
    Rules in order, the first that finds any candidate decides: billing_org_map row; key equals
    company identifier (case-insensitive); normalized name equal. Two candidates → ambiguous.
    Decisions:
    - an org_map row whose company is not among `companies` (deleted/inactive) decides: the
      organization is "unmapped" with match_rule "org_map" and a detail naming the gone company.
      Falling through to key/name would silently override the operator's explicit choice.
    - org_map rows with NA ids are ignored; several rows for one organization naming different
      companies are ambiguous at the org_map rule.
    - NA/blank keys and names never match; duplicate organization/company ids keep the first row.
    - match_rule is set for ambiguous too (the rule that found the candidates); NA for unmapped
      unless the org_map rule decided.
    - keys are unique within a Huntress account only (CONTRACTS §2): a key (as the key rule folds it)
      that organizations of two accounts carry is no key match for any of them; the name rule may
      still decide, and the detail of an unmatched organization names the accounts. `known` is
      every organization Huntress listed (default: `organizations`), so a key shared with an
      organization that is not being matched counts too. Decision: an organization whose
      account_id is unknown (NA, or no such column) shares its key with every other organization
      that carries it, since nothing shows they are of one account.
    """
    shared = _shared_keys(known if known is not None else organizations)
    orgs = organizations.dropna(subset=["organization_id"]).drop_duplicates("organization_id")
    comps = companies.dropna(subset=["company_id"]).drop_duplicates("company_id")
    ids = orgs["organization_id"].astype("Int64").reset_index(drop=True)
    known = set(comps["company_id"].astype("int64").tolist())

    mapped = org_map[["organization_id", "company_id"]].dropna().drop_duplicates()
    org_keys = _fold_key(orgs["key"])
    shared_by = org_keys.map(shared).astype("string")  # accounts sharing the key; NA when not shared
    by_key = _equal_pairs(orgs, comps, org_keys.mask(shared_by.notna()), _fold_key(comps["identifier"]))
    by_name = _equal_pairs(orgs, comps, normalize_names(orgs["name"]), normalize_names(comps["name"]))

    n = len(ids)
    company = np.full(n, -1, dtype="int64")
    rule = np.full(n, None, dtype=object)
    status = np.full(n, "unmapped", dtype=object)
    candidates = np.full(n, None, dtype=object)
    undecided = np.ones(n, dtype=bool)
    for name, pairs in zip(MATCH_RULES, (mapped, by_key, by_name), strict=True):
        count, first, listing = _candidates(pairs)
        found = ids.map(count).fillna(0).to_numpy(dtype="int64")
        decide = undecided & (found > 0)
        rule[decide] = name
        single = decide & (found == 1)
        company[single] = ids[single].map(first).to_numpy(dtype="int64")
        multi = decide & (found > 1)
        status[single], status[multi] = "matched", "ambiguous"
        candidates[multi] = ids[multi].map(listing).to_numpy(dtype=object)
        undecided &= ~decide

    gone = (rule == "org_map") & (status == "matched") & ~np.isin(company, list(known))
    status[gone] = "unmapped"
    out = pd.DataFrame(
        {
            "organization_id": ids,
            "company_id": pd.array(np.where(status == "matched", company, 0), dtype="Int64"),
            "match_rule": pd.array(rule, dtype="string"),
            "status": pd.array(status, dtype="string"),
            "candidate_company_ids": pd.array(candidates, dtype="string"),
        }
    )
    out.loc[status != "matched", "company_id"] = pd.NA
    out["detail"] = _match_details(out, orgs.reset_index(drop=True), company, gone,
                                   shared_by.to_numpy(dtype=object, na_value=None))
    return out


def _shared_keys(organizations: pd.DataFrame) -> dict[str, str]:
    """Folded key → the accounts (ascending ids, "unknown" for NA) of the organizations sharing it,
    for keys that organizations of more than one account (or of an unknown account) carry."""
    accounts = organizations.get("account_id", pd.Series(pd.NA, index=organizations.index))
    df = pd.DataFrame({
        "organization_id": organizations["organization_id"].to_numpy(dtype=object),
        "key": _fold_key(organizations["key"]).to_numpy(dtype=object),
        "account": accounts.astype("Int64").to_numpy(dtype=object),
    }).dropna(subset=["organization_id", "key"]).drop_duplicates(["organization_id", "key"])
    # Keys held by several organizations are few: only those are grouped in Python.
    several = df["key"].duplicated(keep=False).to_numpy(dtype=bool)
    shared: dict[str, str] = {}
    for key, group in df[several].groupby("key", sort=False):
        ids = {int(a) for a in group["account"] if not pd.isna(a)}
        if len(ids) > 1 or group["account"].isna().any():
            names = [str(a) for a in sorted(ids)] + (["unknown"] if group["account"].isna().any() else [])
            shared[key] = ", ".join(names)
    return shared


def _equal_pairs(
    orgs: pd.DataFrame, comps: pd.DataFrame, org_values: pd.Series, comp_values: pd.Series
) -> pd.DataFrame:
    left = pd.DataFrame({"organization_id": orgs["organization_id"].to_numpy(), "v": org_values.to_numpy()})
    right = pd.DataFrame({"company_id": comps["company_id"].to_numpy(), "v": comp_values.to_numpy()})
    pairs = left.dropna().merge(right.dropna(), on="v")
    return pairs[["organization_id", "company_id"]].drop_duplicates()


def _candidates(pairs: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per organization: number of candidate companies, the lowest id, and the list (if several)."""
    grouped = pairs.groupby("organization_id")["company_id"]
    count = grouped.size()
    multi = pairs[pairs["organization_id"].isin(count.index[count > 1])]
    listing = multi.groupby("organization_id")["company_id"].agg(lambda s: ",".join(map(str, sorted(s))))
    return count, grouped.min(), listing


def _match_details(
    out: pd.DataFrame, orgs: pd.DataFrame, company: np.ndarray, gone: np.ndarray, shared_by: np.ndarray
) -> pd.Series:
    detail = np.full(len(out), None, dtype=object)
    status, rule, candidates, name, key = (
        frame[c].to_numpy(dtype=object)
        for frame, c in ((out, "status"), (out, "match_rule"), (out, "candidate_company_ids"), (orgs, "name"),
                         (orgs, "key"))
    )
    for i in np.flatnonzero(status != "matched"):
        if gone[i]:
            detail[i] = (
                f"billing_org_map maps it to company {company[i]}, which is not in ConnectWise "
                "(deleted or not readable)"
            )
        elif status[i] == "ambiguous":
            how = {"org_map": "billing_org_map rows", "key": f"key {_text(key[i])}", "name": f"name {_text(name[i])}"}
            detail[i] = f"{how[rule[i]]} match companies {candidates[i]}"
        elif shared_by[i] is not None:
            detail[i] = (
                f"no billing_org_map row; key {_text(key[i])} is carried by organizations of Huntress accounts "
                f"{shared_by[i]} (keys are unique only within an account), so it is no key match; "
                f"no company named like {_text(name[i])}"
            )
        else:
            detail[i] = (
                f"no billing_org_map row, no company identifier equals key {_text(key[i])}, "
                f"no company named like {_text(name[i])}"
            )
        if status[i] == "ambiguous" and rule[i] == "name" and shared_by[i] is not None:
            detail[i] += f"; key {_text(key[i])} is no key match: Huntress accounts {shared_by[i]} carry it"
    return pd.Series(detail, index=out.index, dtype="string")


# --------------------------------------------------------------------------------------------
# Reconcile


def reconcile(
    usage: pd.DataFrame,
    organizations: pd.DataFrame,
    companies: pd.DataFrame,
    additions: pd.DataFrame,
    org_map: pd.DataFrame,
    settings: Settings,
    billing_date: date,
) -> pd.DataFrame:
    """The `outcomes` frame: one row per sync key, sorted by sync_key (see module docstring).

    Decisions:
    - product keys and catalog identifiers compare exactly (they are configuration, not user text).
      Two configured products with one catalog identifier raise ConfigError: one addition cannot
      carry two counts.
    - the mapping problem outranks the quantity problem: an unmapped/ambiguous organization with an
      invalid count is quarantined for the mapping (the detail mentions the bad count too).
    - a company with an invoice line but no row for a product (a line without that count) is
      `invalid_usage` ("missing count"), not `missing_from_invoice`, which is kept for companies
      none of whose organizations is on the invoice (matched orgs with invalid usage still count
      as "on the invoice"). missing_from_invoice applies whatever the addition's quantity, 0 too.
    - agreement_id/addition_id/previous_quantity are filled whenever the key has exactly one live
      addition, whatever the outcome; new_quantity only for change and unchanged.
    - huntress_quantity is NA when any contributing row is invalid (a partial sum would mislead).
    - a product absent or null on a line (CONTRACTS §2) counts as 0 where the company has no live
      addition for it, and makes the key `invalid_usage` where it has one (one or several), also
      when only one of several organizations of the company lacks the count: absence never lowers
      a quantity. An unmapped or ambiguous organization has no company, so no live addition.
    """
    catalog = _catalog(settings.products)
    adds = _conform_with_issue(additions, "additions")
    comps = frames.conform(companies, "companies").drop_duplicates("company_id")
    rows = _usage_rows(usage, catalog)
    known = frames.conform(organizations, "organizations")
    invoice_orgs = _invoice_organizations(rows, known)
    matches = match_organizations(invoice_orgs, comps, frames.conform(org_map, "org_map"), known)
    rows = _assign_keys(rows, invoice_orgs, matches)
    keys = _aggregate(rows)
    live = adds.loc[live_mask(adds, billing_date, settings.agreement_types)]
    live = live.merge(catalog, left_on="product_identifier", right_on="catalog_identifier")
    live = live[live["company_id"].notna()]
    keys = _add_missing_keys(keys, live)
    keys = _attach_additions(keys, live)
    outcomes = _decide(keys, settings)
    outcomes = _describe(outcomes, rows, live, adds, matches, comps, settings, billing_date)
    outcomes = outcomes.merge(comps[["company_id", "name"]].rename(columns={"name": "company_name"}), how="left")
    return frames.conform(outcomes.sort_values("sync_key", kind="stable"), "outcomes")


def _catalog(products: Mapping[str, str]) -> pd.DataFrame:
    catalog = pd.DataFrame(
        {"product": list(products), "catalog_identifier": list(products.values())}, dtype="string"
    )
    shared = catalog[catalog.duplicated("catalog_identifier", keep=False)]
    if len(shared):
        raise ConfigError(
            "huntress_cw_billing_config.products maps "
            f"{', '.join(shared['product'])} to the same catalog identifier; one addition cannot carry two counts"
        )
    return catalog


def _conform_with_issue(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """`frames.conform`, keeping the optional `issue` column the GX checks add (NA = passed)."""
    issue = df["issue"] if "issue" in df.columns else pd.Series(pd.NA, index=df.index)
    out = frames.conform(df, name)
    out["issue"] = pd.array(issue.to_numpy(dtype=object), dtype="string")
    # A blank text names no failed expectation.
    out["issue"] = out["issue"].mask(out["issue"].str.strip().eq("").fillna(False))
    return out


def _usage_rows(usage: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """Configured-product usage rows with validity flags (see `_row_problem` for the reasons)."""
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
    return rows


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
        }
    ).astype({"name": "string", "key": "string", "account_id": "Int64"})


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
    rows["sync_key"] = rows["kind"] + ":" + key_id + ":" + rows["product"].astype(object)
    return rows


def _aggregate(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows → one row per sync key (sum, invalid count, contributing organizations)."""
    keys = rows.groupby("sync_key", sort=False).agg(
        kind=("kind", "first"),
        company_id=("company_id", "first"),
        organization_id=("organization_id", "first"),
        product=("product", "first"),
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
    """Company keys for (company, product) pairs with live additions but no usage row."""
    pairs = live[["company_id", "product"]].drop_duplicates()
    pairs["sync_key"] = "company:" + pairs["company_id"].astype("string") + ":" + pairs["product"]
    pairs = pairs[~pairs["sync_key"].isin(keys["sync_key"])]
    on_invoice = keys.loc[keys["kind"] == "company", "company_id"]
    pairs["kind"] = np.where(pairs["company_id"].isin(on_invoice), "missing_product", "missing")
    pairs["n_invalid"] = pairs["n_absent"] = 0
    return pd.concat([keys, pairs], ignore_index=True)


def _attach_additions(keys: pd.DataFrame, live: pd.DataFrame) -> pd.DataFrame:
    per_pair = live.groupby(["company_id", "product"]).agg(
        n_live=("addition_id", "size"),
        addition_id=("addition_id", "first"),
        agreement_id=("agreement_id", "first"),
        previous_quantity=("quantity", "first"),
        addition_issue=("issue", "first"),
    )
    keys = keys.merge(per_pair.reset_index(), on=["company_id", "product"], how="left")
    keys["n_live"] = keys["n_live"].fillna(0).astype("int64")
    several = keys["n_live"] != 1
    keys.loc[several, ["addition_id", "agreement_id", "previous_quantity", "addition_issue"]] = pd.NA
    return keys


def _decide(keys: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    kind = keys["kind"].to_numpy(dtype=object)
    n_live = keys["n_live"].to_numpy(dtype="int64")
    # A product absent (or null) on a line of a company with a live addition for it is no count:
    # taking it as 0 would lower the quantity from a gap in the data (CONTRACTS §2).
    absent_live = (keys["n_absent"].to_numpy(dtype="int64") > 0) & (n_live > 0)
    valid = (keys["n_invalid"].to_numpy(dtype="int64") == 0) & ~absent_live
    usage = keys["quantity"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    usage = np.where(valid & np.isin(kind, ["company", "organization"]), usage, np.nan)
    old = keys["previous_quantity"].astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    ambiguous = keys["status"].eq("ambiguous").fillna(False).to_numpy(dtype=bool)

    diff = np.abs(usage - old)
    with np.errstate(invalid="ignore"):
        addition_ok = (old >= 0) & (old == np.floor(old)) & keys["addition_issue"].isna().to_numpy(dtype=bool)
        over_limit = (diff > settings.max_change_units) & (diff > settings.max_change_ratio * old)
        to_zero = (usage == 0) & (old > 0) & (not settings.allow_drop_to_zero)
    reason = np.select(
        [
            kind == "line",
            (kind == "organization") & valid & (usage == 0),
            (kind == "organization") & ambiguous,
            kind == "organization",
            kind == "missing_product",
            kind == "missing",
            ~valid,
            (n_live == 0) & (usage > 0),
            n_live == 0,
            n_live > 1,
            ~addition_ok,
            usage == old,
            over_limit | to_zero,
        ],
        [
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
        (kind == "company") & valid & (n_live == 0) & (usage == 0)
    )
    unchanged = (reason == "") & ~not_applicable & (usage == old)
    outcome = np.select(
        [reason != "", not_applicable, unchanged], ["quarantined", "not_applicable", "unchanged"], "change"
    )
    out = keys.assign(
        outcome=outcome,
        reason_code=pd.array(np.where(reason == "", None, reason), dtype="string"),
        huntress_quantity=pd.array(np.where(np.isnan(usage), None, usage), dtype="Float64").astype("Int64"),
    )
    pushable = np.isin(outcome, ["change", "unchanged"])
    out["new_quantity"] = out["huntress_quantity"].where(pushable, pd.NA)
    return out


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
    """Detail text: vectorized for `change`, per row for quarantined keys (few)."""
    out["catalog_identifier"] = out["product"].map(settings.products)
    change = out["outcome"].to_numpy(dtype=object) == "change"
    detail = np.full(len(out), None, dtype=object)
    if change.any():
        old = out.loc[change, "previous_quantity"].astype("float64").to_numpy()
        new = out.loc[change, "huntress_quantity"].astype("int64").to_numpy()
        delta = pd.Series(new - old.astype("int64")).map("{:+d}".format).str.replace("-", "−")
        product = out.loc[change, "product"].astype(object).to_numpy()
        detail[change] = (
            product + " " + pd.Series(old.astype("int64")).astype(str).to_numpy(dtype=object) + " → "
            + pd.Series(new).astype(str).to_numpy(dtype=object) + " (" + delta.to_numpy(dtype=object) + ")"
        )
    held = np.flatnonzero(out["outcome"].to_numpy(dtype=object) == "quarantined")
    if len(held):
        records = _records(out.iloc[held][_DETAIL_COLUMNS])
        ctx = _Context(records, rows, live, adds, matches, comps, settings, billing_date)
        detail[held] = [ctx.detail(k) for k in records]
    out["detail"] = pd.array(detail, dtype="string")
    return out


# What the detail text reads, so only these columns are turned into Python objects.
_DETAIL_COLUMNS = [
    "sync_key", "kind", "reason_code", "product", "company_id", "organization_id", "organization_names",
    "quantity", "huntress_quantity", "previous_quantity", "n_live", "addition_issue", "n_invalid", "n_absent",
]
_ROW_COLUMNS = [
    "sync_key", "no_org", "line_id", "organization_id", "org_name", "product", "copies", "quantity",
    "raw_quantity", "has_issue", "issue", "invalid", "absent",
]
_ADDITION_COLUMNS = [*frames.SCHEMAS["additions"], "product"]


class _Context:
    """Lookups for the detail text of quarantined keys, restricted to those keys."""

    def __init__(
        self,
        held: list[dict[str, Any]],
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
        for r in _records(bad[_ROW_COLUMNS]):
            (self.problems if r["invalid"] else self.absent).setdefault(r["sync_key"], []).append(_row_problem(r))
        unmatched = matches[matches["status"] != "matched"].set_index("organization_id")
        self.match = unmatched["detail"].to_dict()
        self.candidates = unmatched["candidate_company_ids"].to_dict()
        self.names = comps.set_index("company_id")["name"]
        listed = _pairs(held, ("duplicate_addition", "invalid_addition", "missing_from_invoice", "invalid_usage"))
        self.live = _group(live.merge(listed))
        catalog = pd.DataFrame(
            {"product": list(settings.products), "product_identifier": list(settings.products.values())}
        )
        self.all = _group(adds.merge(catalog).merge(_pairs(held, ("no_live_addition",))))
        missing = _pairs(held, ("invalid_usage",))
        orgs = rows[~rows["no_org"]].merge(missing[["company_id"]].drop_duplicates())
        self.orgs_of = orgs.groupby("company_id")["organization_id"].agg(
            lambda s: ",".join(map(str, sorted(set(s))))
        ).to_dict()

    def detail(self, k: Mapping[str, Any]) -> str:
        code, product = k["reason_code"], k["product"]
        catalog = self.settings.products[product]
        problems = "; ".join(self.problems.get(k["sync_key"], []))
        if code in ("unmapped_organization", "ambiguous_company_match"):
            org = k["organization_id"]
            text = f"organization {org} {_text(k['organization_names'])}: {self.match.get(org)}"
            if code == "ambiguous_company_match":
                ids = str(self.candidates.get(org) or "").split(",")
                text += " (" + ", ".join(f"{c} {_text(self.names.get(int(c)))}" for c in ids if c) + ")"
            usage = f"usage also invalid: {problems}" if problems else f"{product} usage {k['quantity']}"
            return f"{text}; {usage}"
        if code == "invalid_usage" and k["kind"] == "missing_product":
            return (
                f"organizations {self.orgs_of.get(k['company_id'])} of this company are on the invoice but carry no "
                f"{product} count (live {catalog}: {self.listing(k)})"
            )
        if code == "invalid_usage":
            text = "; ".join(self.problems.get(k["sync_key"], []) + self.absent.get(k["sync_key"], []))
            if k["n_absent"] and k["n_live"]:
                text += (f" (absent or null counts as 0 only where the company has no live {catalog} addition; "
                         f"live: {self.listing(k)})")
            return text
        if code == "no_live_addition":
            text = f"{int(k['huntress_quantity'])} {product} units on the invoice, no live {catalog} addition"
            others = self.all.get((k["company_id"], product), [])
            if others:
                text += "; not live: " + ", ".join(
                    f"addition {a['addition_id']} on agreement {a['agreement_id']} {_text(a['agreement_name'])} "
                    f"({_why_not_live(a, self.billing_date, self.settings.agreement_types)})"
                    for a in others
                )
            return text
        if code == "duplicate_addition":
            return f"{k['n_live']} live {catalog} additions: {self.listing(k)}"
        if code == "invalid_addition":
            old = k["previous_quantity"]
            why = []
            if pd.isna(old) or old < 0 or not float(old).is_integer():
                why.append(f"the ConnectWise quantity ({_qty(old)}) is not a whole non-negative number")
            if not pd.isna(k["addition_issue"]):
                why.append(f"failed check: {k['addition_issue']}")
            return (
                f"{self.listing(k)}: {'; '.join(why)}, so no change can be computed "
                f"({product} usage {_text(k['huntress_quantity'], quote=False)})"
            )
        if code == "missing_from_invoice":
            return f"no organization of this company is on the invoice; live {catalog}: {self.listing(k)}"
        if code == "change_exceeds_limit":
            return _guard_text(product, k["previous_quantity"], k["huntress_quantity"], self.settings)
        return REASON_CODES[code]

    def listing(self, k: Mapping[str, Any]) -> str:
        return ", ".join(
            f"addition {a['addition_id']} on agreement {a['agreement_id']} {_text(a['agreement_name'])} "
            f"(quantity {_qty(a['quantity'])})"
            for a in self.live.get((k["company_id"], k["product"]), [])
        )


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts, much faster than DataFrame.to_dict for extension dtypes (NA stays pd.NA)."""
    columns = list(df.columns)
    arrays = [df[c].to_numpy(dtype=object) for c in columns]
    return [dict(zip(columns, values, strict=True)) for values in zip(*arrays, strict=True)]


def _pairs(held: list[dict[str, Any]], codes: tuple[str, ...]) -> pd.DataFrame:
    """(company_id, product) of the held company keys with one of `codes`."""
    pairs = [(k["company_id"], k["product"]) for k in held if k["reason_code"] in codes and not pd.isna(k["company_id"])]
    return pd.DataFrame(pairs, columns=["company_id", "product"]).astype({"company_id": "Int64", "product": "string"})


def _group(additions: pd.DataFrame) -> dict[tuple[int, str], list[dict[str, Any]]]:
    grouped: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for a in _records(additions.sort_values("addition_id")[_ADDITION_COLUMNS]):
        grouped.setdefault((a["company_id"], a["product"]), []).append(a)
    return grouped


def _row_problem(r: Mapping[str, Any]) -> str:
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
        why.append(f"failed check: {r['issue']}")
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


def _qty(value: Any) -> str:
    if pd.isna(value):
        return "none"
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _text(value: Any, quote: bool = True) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "(none)"
    return repr(str(value)) if quote else str(value)


# --------------------------------------------------------------------------------------------
# Counts


def summarize(outcomes: pd.DataFrame) -> dict[str, int]:
    """Counts per outcome (reconcile's and push's) and per reason code, all present, plus "total"."""
    by_outcome = outcomes["outcome"].value_counts(dropna=False).to_dict()
    by_reason = outcomes["reason_code"].dropna().value_counts().to_dict()
    counts = {name: int(by_outcome.get(name, 0)) for name in (*OUTCOMES, *PUSH_OUTCOMES)}
    counts.update({code: int(by_reason.get(code, 0)) for code in REASON_CODES})
    # Unknown values are kept rather than dropped, so the counts always add up to total.
    for name, n in by_outcome.items():
        if not pd.isna(name) and name not in counts:
            counts[str(name)] = int(n)
    counts["total"] = len(outcomes)
    return counts
