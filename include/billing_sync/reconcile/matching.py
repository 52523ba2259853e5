"""Organization → company: the rules in order (billing_org_map, key, name) and the never-guess fold.

Names and keys are folded before they are compared; a rule that finds two candidates decides
"ambiguous" rather than picking one. Never guess (docs/contract.md §2): a key or name match counts
only when no other company is the same under the looser fold too (letters and digits only).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from typing import cast

import numpy as np
import pandas as pd

from .text import _text

MATCH_RULES = ("org_map", "key", "name")


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


class _LooseTable(dict[int, str | None]):
    """`str.translate` table of the loose fold: letters (L*) and digits/numbers (N*) stay, all else goes."""

    def __missing__(self, codepoint: int) -> str | None:
        value = chr(codepoint) if unicodedata.category(chr(codepoint))[0] in "LN" else None
        self[codepoint] = value
        return value


_LOOSE = _LooseTable()
# `_FOLD` of ASCII text as a plain dict (no __missing__ call per character): ASCII needs no NFKC, and
# its casefold is its lower case, so `normalize_name` of an ASCII name needs only this and `lower`.
_ASCII_FOLD = {c: _FOLD[c] for c in range(128)}
# `loose_fold` of ASCII text in one step: letters lowered, digits kept, the rest dropped.
_ASCII_LOOSE = {c: (chr(c).lower() if chr(c).isalnum() else None) for c in range(128)}
# How a detail says that the loose fold found the candidates (reconcile/details.py reads it too).
LOOSELY = "once punctuation, spacing and case are ignored"


def normalize_name(s: str) -> str:
    """Fold case, spacing and punctuation: 'ACME,  Inc.' → 'acme inc'.

    NFKC (full-width and compatibility forms become plain), casefold, punctuation, symbols and control
    characters dropped, whitespace collapsed.
    Decisions: punctuation is dropped, not turned into a space ("Acme-Corp" = "AcmeCorp" ≠ "Acme Corp"),
    the plain reading of "punctuation folded" and what the project's test oracles do; accents are
    kept ('Café' ≠ 'Cafe'): they distinguish real names in many languages.
    """
    if s.isascii():  # the same answer as `_normalize_any`, without NFKC: most names
        return " ".join(s.translate(_ASCII_FOLD).lower().split())
    return _normalize_any(s)


def _normalize_any(s: str) -> str:
    """`normalize_name` of any text."""
    # Symbols go before NFKC too, or '™' would become the letters 'TM'.
    text = unicodedata.normalize("NFKC", s.translate(_FOLD))
    text = unicodedata.normalize("NFKC", text.casefold())
    return " ".join(text.translate(_FOLD).split())


def normalize_names(values: pd.Series) -> pd.Series:
    """`normalize_name` over a Series (string dtype): NA, and names that fold to '', become NA."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    # An object array iterates at C speed; a pandas StringArray asks __getitem__ once per value.
    folded = np.array(
        [normalize_name(str(u)) or None for u in np.asarray(uniques, dtype=object)] + [None], dtype=object
    )
    # Sentinel -1 picks the trailing None.
    return pd.Series(folded[codes], index=values.index, dtype="string")


def loose_fold(s: str) -> str:
    """The never-guess reading: `normalize_name`, then only letters and digits.

    'Acme Corp', 'Acme-Corp', 'ACME CORP.' and 'AcmeCorp' are all 'acmecorp'. It is applied to values
    the strict folds already produced, so two values equal under the strict fold are equal here too.
    Decisions: accents stay as `normalize_name` keeps them (NFKC composes 'e' + U+0301 into 'é');
    combining marks NFKC cannot compose are not letters and go; a value with no letter or digit
    folds to '' and is the same as any other such value (it is not dropped, as it never guesses).
    """
    if s.isascii():  # the same answer, without NFKC: most identifiers
        return s.translate(_ASCII_LOOSE)
    return normalize_name(s).translate(_LOOSE)


def _letters_and_digits(folded: str) -> str:
    """`loose_fold` of a name, from its `normalize_name` fold (which it starts with)."""
    return folded.translate(_LOOSE)


def _loose_folds(values: pd.Series, fold: Callable[[str], str]) -> pd.Series:
    """`fold` over strictly folded values (string dtype); NA stays NA. One call per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    folded = np.array([fold(str(u)) for u in np.asarray(uniques, dtype=object)] + [None], dtype=object)
    return pd.Series(folded[codes], index=values.index, dtype="string")


def _fold_key(values: pd.Series) -> pd.Series:
    """Keys/identifiers compared case-insensitively (surrounding spaces ignored); '' never matches."""
    folded = values.astype("string").str.strip().str.casefold()
    return folded.mask(folded == "")


def match_organizations(
    organizations: pd.DataFrame,
    companies: pd.DataFrame,
    org_map: pd.DataFrame,
    known: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per distinct organization id: which company it maps to, and by which rule.

    Columns: organization_id, company_id (Int64, NA when none), match_rule (org_map|key|name|NA),
    status (matched|unmapped|ambiguous), candidate_company_ids (ascending, comma-separated, for
    ambiguous), detail (why, for unmapped and ambiguous; NA when matched).
    Rules in order, the first that finds any candidate decides: billing_org_map row; key equals
    company identifier (case-insensitive); normalized name equal. Two candidates → ambiguous.
    Never guess (docs/contract.md §2): once the key or name rule finds a company, its candidates are
    every company whose identifier (name) is the same under `loose_fold`, so a second company that
    differs only in punctuation, spacing or case makes it ambiguous, and the detail names each
    candidate. The loose fold alone never finds a company: a rule whose strict fold finds none does
    not decide. The billing_org_map rule is not folded at all.
    Decisions:
    - an org_map row whose company is not among `companies` (deleted/inactive) decides: the
      organization is "unmapped" with match_rule "org_map" and a detail naming the gone company.
      Falling through to key/name would silently override the operator's explicit choice.
    - org_map rows with NA ids are ignored; several rows for one organization naming different
      companies are ambiguous at the org_map rule.
    - NA/blank keys and names never match; duplicate organization/company ids keep the first row.
    - match_rule is set for ambiguous too (the rule that found the candidates); NA for unmapped
      unless the org_map rule decided.
    - an organization with `unreadable` set (its account answered 403) is unmapped whatever the
      rules say, billing_org_map included; the detail says which account refused.
    - keys are unique within a Huntress account only (docs/contract.md §2): a key (as the key rule folds it)
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
    company_ids = set(comps["company_id"].astype("int64").tolist())

    mapped = org_map[["organization_id", "company_id"]].dropna().drop_duplicates()
    org_keys = _fold_key(orgs["key"])
    shared_by = org_keys.map(shared).astype("string")  # accounts sharing the key; NA when not shared
    by_key, key_widened = _never_guess(
        orgs, comps, org_keys.mask(shared_by.notna()), _fold_key(comps["identifier"]), loose_fold
    )
    by_name, name_widened = _never_guess(
        orgs, comps, normalize_names(orgs["name"]), normalize_names(comps["name"]), _letters_and_digits
    )

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

    gone = (rule == "org_map") & (status == "matched") & ~np.isin(company, list(company_ids))
    status[gone] = "unmapped"
    # An organization of a Huntress account the key may not read (403): without the account's own
    # record no rule can be checked against never-guess, so nothing decides, not even billing_org_map.
    unreadable = orgs.get("unreadable", pd.Series(pd.NA, index=orgs.index, dtype="string"))
    unreadable = unreadable.astype("string").reset_index(drop=True)
    refused = unreadable.notna().to_numpy(dtype=bool)
    status[refused], rule[refused], candidates[refused], gone[refused] = "unmapped", None, None, False
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
    # pandas-stubs type `na_value` as a scalar that is never None; pandas takes None.
    sharing = shared_by.to_numpy(dtype=object, na_value=None)  # type: ignore[call-overload]
    loose = ((rule == "key") & ids.isin(key_widened).to_numpy()) | (
        (rule == "name") & ids.isin(name_widened).to_numpy()
    )
    out["detail"] = _match_details(out, orgs.reset_index(drop=True), company, gone, sharing, loose, comps)
    if refused.any():
        out.loc[refused, "detail"] = unreadable[refused] + "; its lines are held until the key may read it"
    return out


def _shared_keys(organizations: pd.DataFrame) -> dict[str, str]:
    """Folded key → the accounts (ascending ids, "unknown" for NA) of the organizations sharing it,
    for keys that organizations of more than one account (or of an unknown account) carry."""
    accounts = organizations.get("account_id", pd.Series(pd.NA, index=organizations.index))
    df = (
        pd.DataFrame(
            {
                "organization_id": organizations["organization_id"].to_numpy(dtype=object),
                "key": _fold_key(organizations["key"]).to_numpy(dtype=object),
                "account": accounts.astype("Int64").to_numpy(dtype=object),
            }
        )
        .dropna(subset=["organization_id", "key"])
        .drop_duplicates(["organization_id", "key"])
    )
    # Keys held by several organizations are few: only those are grouped in Python.
    several = df["key"].duplicated(keep=False).to_numpy(dtype=bool)
    shared: dict[str, str] = {}
    for key, group in df[several].groupby("key", sort=False):
        ids = {int(a) for a in group["account"] if not pd.isna(a)}
        if len(ids) > 1 or group["account"].isna().any():
            names = [str(a) for a in sorted(ids)] + (["unknown"] if group["account"].isna().any() else [])
            shared[cast(str, key)] = ", ".join(names)  # a folded key: text (NA keys were dropped)
    return shared


def _equal_pairs(
    orgs: pd.DataFrame, comps: pd.DataFrame, org_values: pd.Series, comp_values: pd.Series
) -> pd.DataFrame:
    left = pd.DataFrame({"organization_id": orgs["organization_id"].to_numpy(), "v": org_values.to_numpy()})
    right = pd.DataFrame({"company_id": comps["company_id"].to_numpy(), "v": comp_values.to_numpy()})
    pairs = left.dropna().merge(right.dropna(), on="v")
    return pairs[["organization_id", "company_id"]].drop_duplicates()


def _never_guess(
    orgs: pd.DataFrame,
    comps: pd.DataFrame,
    org_values: pd.Series,
    comp_values: pd.Series,
    loose: Callable[[str], str],
) -> tuple[pd.DataFrame, pd.Index]:
    """One rule's candidate pairs under never-guess, and the organizations the loose fold widened.

    `org_values` / `comp_values` are strictly folded; `loose` maps a strictly folded value to its
    `loose_fold`, so values equal under the strict fold are equal under the loose one. An
    organization the strict values pair with at least one company gets as candidates every company
    whose loose value is the same (a superset of the strict ones); the others get none. Only the
    found organizations' values are loose-folded.
    """
    strict = _equal_pairs(orgs, comps, org_values, comp_values)
    found = orgs["organization_id"].isin(strict["organization_id"]).to_numpy(dtype=bool)
    if not found.any():
        return strict, pd.Index([])
    # Only companies that share a letter-and-digit reading with some found organization can matter,
    # but folding all of them once is cheap (one call per distinct value).
    pairs = _equal_pairs(
        orgs[found], comps, _loose_folds(org_values[found], loose), _loose_folds(comp_values, loose)
    )
    n_loose = pairs.groupby("organization_id").size()
    n_strict = strict.groupby("organization_id").size().reindex(n_loose.index, fill_value=0)
    return pairs, n_loose.index[n_loose > n_strict]


def _candidates(pairs: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per organization: number of candidate companies, the lowest id, and the list (if several)."""
    grouped = pairs.groupby("organization_id")["company_id"]
    count = grouped.size()
    multi = pairs[pairs["organization_id"].isin(count.index[count > 1])]
    listing = multi.groupby("organization_id")["company_id"].agg(lambda s: ",".join(map(str, sorted(s))))
    return count, grouped.min(), listing


def _match_details(
    out: pd.DataFrame,
    orgs: pd.DataFrame,
    company: np.ndarray,
    gone: np.ndarray,
    shared_by: np.ndarray,
    loose: np.ndarray,
    comps: pd.DataFrame,
) -> pd.Series:
    detail = np.full(len(out), None, dtype=object)
    # Names and identifiers of the companies a loose (never-guess) ambiguity lists: few rows.
    listed = {int(c) for ids in out["candidate_company_ids"][loose].dropna() for c in str(ids).split(",")}
    named = comps[comps["company_id"].isin(listed)].set_index("company_id")
    comp_name, comp_ident = named["name"].to_dict(), named["identifier"].to_dict()
    status, rule, candidates, name, key = (
        frame[c].to_numpy(dtype=object)
        for frame, c in (
            (out, "status"),
            (out, "match_rule"),
            (out, "candidate_company_ids"),
            (orgs, "name"),
            (orgs, "key"),
        )
    )
    for i in np.flatnonzero(status != "matched"):
        if gone[i]:
            detail[i] = (
                f"billing_org_map maps it to company {company[i]}, which is not in ConnectWise "
                "(deleted or not readable)"
            )
        elif status[i] == "ambiguous" and loose[i]:
            ids = [int(c) for c in str(candidates[i]).split(",")]
            if rule[i] == "key":
                which = ", ".join(
                    f"{c} {_text(comp_name.get(c))} (identifier {_text(comp_ident.get(c))})" for c in ids
                )
                detail[i] = f"key {_text(key[i])} matches companies {which} {LOOSELY}"
            else:
                which = ", ".join(f"{c} {_text(comp_name.get(c))}" for c in ids)
                detail[i] = f"name {_text(name[i])} matches companies {which} {LOOSELY}"
        elif status[i] == "ambiguous":
            how = {
                "org_map": "billing_org_map rows",
                "key": f"key {_text(key[i])}",
                "name": f"name {_text(name[i])}",
            }
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
