"""Suspicious matches: names that share nothing, shared companies, missing additions.

Key matches whose names share nothing, companies several organizations map to, and an unmapped
organization named like a company whose additions went missing from the invoice.

Pure functions on the frames of `matching` (issue 20 §3): `match_organizations`' matches, the
organizations and companies frames, and the companies with open `missing_from_invoice` rows. Each
returns `Finding`s a person should look at; none of them changes how a run matches or bills.

Decisions:
- Only a **key** match is checked for differing names: a name match has equal names by definition,
  and a billing_org_map row is a person's explicit choice (docs/contract.md §2: it always decides).
- A company several organizations map to is flagged whatever the rules (billing_org_map included):
  it is often intended (one customer, several Huntress organizations), so the words ask to check it.
- A pairing is suggested only for an organization no rule maps (status `unmapped`; an ambiguous one
  has its candidates already) and a company with open `missing_from_invoice` rows, and only when
  exactly one such company reads like it: never guess (docs/contract.md §2) holds for suggestions too.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from .matching import MATCH_RULES, normalize_name

NAMES_DIFFER = "names_differ"
SHARED_COMPANY = "shared_company"
PAIRING_SUGGESTED = "pairing_suggested"
KINDS = (PAIRING_SUGGESTED, NAMES_DIFFER, SHARED_COMPANY)  # the order the pages list them in

# Words that say what kind of body a business is, not which one: "Acme Inc" and "ACME, Inc." are one
# name, and "Acme Group" and "Zenith Group" share nothing. Compared after `normalize_name` (which
# drops punctuation: "S.A." is "sa", "& Co." is "co").
NOISE_WORDS = frozenset(
    {
        # legal forms
        "llc", "llp", "pllc", "lp", "ltd", "limited", "pty", "inc", "incorporated", "co", "corp",
        "corporation", "company", "gmbh", "ag", "plc", "pc", "sa", "kk", "bv", "nv", "srl", "sarl",
        # words that join names
        "the", "and", "of",
        # words many unrelated businesses carry
        "group", "holdings", "services", "solutions", "partners",
    }
)  # fmt: skip
# Below this difflib ratio two names with no word in common "share nothing". Measured on every pair
# of the sandbox generator's company names with no word in common (76,826 pairs of seeds 1, 7, 42):
# 99% are below 0.47 and 99.9% below 0.6, while one typo ("Harborview"/"Harbourview") is 0.95 and a
# dropped letter ("Jon"/"John Smith") 0.95. 0.6 flags unrelated names and leaves misspellings alone.
DIFFERENT_BELOW = 0.6
# At or above this ratio two names are "very close" (a typo, a dropped letter, a possessive 's): the
# misspellings above are 0.92-0.97, while unrelated names of one industry ("Summit Dental" /
# "Sunrise Dental") stay under it.
CLOSE_FROM = 0.9
ABBREVIATION_MIN = 3  # "Eng" for "Engineering"; two letters ("PT") only as the initials of words


@dataclass(frozen=True)
class Finding:
    """One suspicious match: what kind, whom it is about, the rule that matched, why it stands out."""

    kind: str  # names_differ | shared_company | pairing_suggested
    organization_ids: tuple[int, ...]
    organization_names: tuple[str, ...]
    company_id: int
    company_name: str
    match_rule: str | None  # the rule that matched (shared_company: each organization's, comma-joined)
    explanation: str


def significant_words(name: Any) -> tuple[str, ...]:
    """`normalize_name`'s words without `NOISE_WORDS`: 'Tidewater Marketing Pty Ltd' → ('tidewater',
    'marketing'); NA or a blank name → ()."""
    if name is None or name is pd.NA or (isinstance(name, float) and pd.isna(name)):
        return ()
    return tuple(w for w in normalize_name(str(name)).split() if w not in NOISE_WORDS)


def similarity(a: Sequence[str], b: Sequence[str]) -> float:
    """difflib's ratio of the two names' significant words, joined by spaces (0 to 1)."""
    return difflib.SequenceMatcher(None, " ".join(a), " ".join(b), autojunk=False).ratio()


def share_nothing(a: Any, b: Any) -> bool:
    """No significant word in common and a similarity under `DIFFERENT_BELOW`. A name with no
    significant word (NA, blank, only "Inc") says nothing, so it never differs."""
    wa, wb = significant_words(a), significant_words(b)
    if not wa or not wb or set(wa) & set(wb):
        return False
    return similarity(wa, wb) < DIFFERENT_BELOW


def read_alike(a: Any, b: Any) -> bool:
    """The same name as two people wrote it: equal significant words, a similarity of at least
    `CLOSE_FROM`, or word for word the same with abbreviations ("Parkside PT" / "Parkside Physical
    Therapy", "Delta Eng" / "Delta Engineering") and at least one word spelled out alike."""
    return _alike(significant_words(a), significant_words(b))


def _alike(wa: tuple[str, ...], wb: tuple[str, ...]) -> bool:
    """`read_alike` of two names' significant words."""
    if not wa or not wb:
        return False
    if wa == wb or (set(wa) & set(wb) and _aligned(wa, wb, 0, 0)):
        return True
    matcher = difflib.SequenceMatcher(None, " ".join(wa), " ".join(wb), autojunk=False)
    # quick_ratio bounds ratio from above and is cheap: most pairs of names stop there.
    return matcher.quick_ratio() >= CLOSE_FROM and matcher.ratio() >= CLOSE_FROM


def _abbreviates(short: str, long: str) -> bool:
    """`short` is `long` with letters left out, first letter kept: "mgmt" of "management"."""
    if len(short) < ABBREVIATION_MIN or len(short) >= len(long) or short[0] != long[0]:
        return False
    rest = iter(long)
    return all(ch in rest for ch in short)  # a subsequence: each letter found after the last


def _initials(word: str, words: Sequence[str]) -> int:
    """How many of `words` (from the start) `word` is the initials of, at least 2; 0 if none."""
    for n in range(2, len(words) + 1):
        if len(word) == n and word == "".join(w[0] for w in words[:n]):
            return n
    return 0


def _aligned(a: Sequence[str], b: Sequence[str], i: int, j: int) -> bool:
    """a[i:] and b[j:] word for word: equal, abbreviated, or a word the initials of several."""
    if i == len(a) or j == len(b):
        return i == len(a) and j == len(b)
    x, y = a[i], b[j]
    if (x == y or _abbreviates(x, y) or _abbreviates(y, x)) and _aligned(a, b, i + 1, j + 1):
        return True
    if (n := _initials(x, b[j:])) and _aligned(a, b, i + 1, j + n):
        return True
    return bool((n := _initials(y, a[i:])) and _aligned(a, b, i + n, j + 1))


def _names(frame: pd.DataFrame, id_column: str) -> dict[int, str]:
    """id → name of a frame (first row of an id wins; a missing name is '')."""
    rows = frame.dropna(subset=[id_column]).drop_duplicates(id_column)
    # Plain lists: a pandas item access per row costs more than the rest of the findings.
    ids = rows[id_column].astype("int64").tolist()
    return dict(zip(ids, rows["name"].astype("string").fillna("").tolist(), strict=True))


def _matched(matches: pd.DataFrame) -> pd.DataFrame:
    return matches[matches["status"].eq("matched").fillna(False) & matches["company_id"].notna()]


def names_differ(
    matches: pd.DataFrame, organizations: pd.DataFrame, companies: pd.DataFrame
) -> list[Finding]:
    """Key matches (rule `key`) whose organization and company names share nothing (`share_nothing`)."""
    org_names, company_names = _names(organizations, "organization_id"), _names(companies, "company_id")
    keyed = _matched(matches)
    keyed = keyed[keyed["match_rule"].eq("key").fillna(False)]
    out: list[Finding] = []
    pairs = zip(keyed["organization_id"].tolist(), keyed["company_id"].tolist(), strict=True)
    for org, company in pairs:
        org_name, company_name = org_names.get(int(org), ""), company_names.get(int(company), "")
        if share_nothing(org_name, company_name):
            out.append(
                Finding(
                    NAMES_DIFFER,
                    (int(org),),
                    (org_name,),
                    int(company),
                    company_name,
                    "key",
                    f"“{org_name}” is billed to “{company_name}” because its Huntress key equals the "
                    "company's identifier, but the names have nothing in common: check the key is right.",
                )
            )
    return out


def shared_companies(
    matches: pd.DataFrame, organizations: pd.DataFrame, companies: pd.DataFrame
) -> list[Finding]:
    """Companies that two or more matched organizations map to (any rule), ascending by company."""
    org_names, company_names = _names(organizations, "organization_id"), _names(companies, "company_id")
    matched = _matched(matches)
    matched = matched[matched["company_id"].duplicated(keep=False)]  # few rows: grouped in Python
    shared: dict[int, list[tuple[int, str | None]]] = {}
    rows = zip(
        matched["company_id"].tolist(),
        matched["organization_id"].tolist(),
        matched["match_rule"].astype(object).where(matched["match_rule"].notna(), None).tolist(),
        strict=True,
    )
    for company, org, rule in rows:
        shared.setdefault(int(company), []).append((int(org), rule))
    out: list[Finding] = []
    for company, members in sorted(shared.items()):
        members.sort(key=lambda member: member[0])
        ids = tuple(o for o, _ in members)
        names = tuple(org_names.get(o, "") for o in ids)
        used = {str(r) for _, r in members if r is not None}
        rules = ",".join(r for r in MATCH_RULES if r in used)
        company_name = company_names.get(int(company), "")
        out.append(
            Finding(
                SHARED_COMPANY,
                ids,
                names,
                int(company),
                company_name,
                rules or None,
                f"{_listing(names)} are {'both' if len(ids) == 2 else 'all'} billed to “{company_name}”, "
                "their usage added together: "
                "right for one customer with several Huntress organizations; check this is intended.",
            )
        )
    return out


def suggested_pairings(
    matches: pd.DataFrame, organizations: pd.DataFrame, companies: pd.DataFrame, missing: pd.DataFrame
) -> list[Finding]:
    """Unmapped organizations named like exactly one company with open `missing_from_invoice` rows.

    `missing`: those rows, with columns company_id and product (several rows per company allowed).
    """
    org_names, company_names = _names(organizations, "organization_id"), _names(companies, "company_id")
    products: dict[int, list[str]] = {}
    for company, product in zip(missing["company_id"], missing["product"], strict=True):
        if not pd.isna(company) and int(company) in company_names:
            found = products.setdefault(int(company), [])
            if not pd.isna(product) and str(product) not in found:
                found.append(str(product))
    unmapped = matches[matches["status"].eq("unmapped").fillna(False)]
    words = {c: significant_words(company_names[c]) for c in sorted(products)}
    out: list[Finding] = []
    for org in sorted(int(o) for o in unmapped["organization_id"].dropna()):
        org_name = org_names.get(org, "")
        own = significant_words(org_name)
        alike = [c for c, theirs in words.items() if _alike(own, theirs)]
        if len(alike) != 1:
            continue  # none, or several that read alike: nothing to suggest without guessing
        company = alike[0]
        what = ", ".join(sorted(products[company])) or "its products"
        out.append(
            Finding(
                PAIRING_SUGGESTED,
                (org,),
                (org_name,),
                company,
                company_names[company],
                None,
                f"“{org_name}” maps to no company, and “{company_names[company]}”, named alike, has "
                f"additions ({what}) with no usage on the invoice: probably the same customer.",
            )
        )
    return out


def find_suspicious(
    matches: pd.DataFrame, organizations: pd.DataFrame, companies: pd.DataFrame, missing: pd.DataFrame
) -> list[Finding]:
    """Every finding, pairings first, then differing names, then shared companies."""
    return [
        *suggested_pairings(matches, organizations, companies, missing),
        *names_differ(matches, organizations, companies),
        *shared_companies(matches, organizations, companies),
    ]


def _listing(names: Iterable[str]) -> str:
    quoted = [f"“{n}”" for n in names]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)
