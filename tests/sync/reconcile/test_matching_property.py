"""reconcile/matching.py, never guess (docs/contract.md §2): no organization is ever matched to one of
two companies whose names (or identifiers) are the same letters and digits.

Hypothesis writes a few customers' names and identifiers the ways people type them: random
punctuation, spacing and case, NFC or NFD accents, full-width letters. How many cases it draws is the
profile's (tests/conftest.py).
"""

from __future__ import annotations

import unicodedata
from typing import Any

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from billing_sync import frames
from billing_sync import reconcile as rc
from tests.sync.reconcile import companies_of, org_map_of, orgs_of

# Customers, (name, identifier). Near names that differ in a letter or digit are other customers.
BASES = [
    ("Blue Bird Dental", "BBD-1"),
    ("Blue Bird Dental 2", "BBD-2"),
    ("Blue Bird Dentistry", "BBD1X"),
    ("Acme Corp", "ACME-1"),
    ("Café Lumière", "CAFE.LUM"),
    ("Cafe Lumiere", "CAFE-LUM-2"),
    ("Zürich Zahnärzte AG", "ZZ 7"),
    ("Straße 12", "STRASSE12"),
    ("O'Brien & Sons", "OBRIEN"),
]
PUNCTUATION = ["-", ".", ",", "'", "_", "/", "(", ")", "!", "&", "·", "－", "，"]  # the last two full-width
SEPARATORS = [" ", " ", " ", "  ", "", "-", ". ", ", ", "_", "\t", "\u00a0", "\u3000"]


def loose(value: Any) -> str | None:
    """The contract's looser reading, written independently: letters and digits only, case folded."""
    if pd.isna(value):
        return None
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", str(value)).casefold())
    return "".join(ch for ch in text if ch.isalnum())


@st.composite
def typed(draw: st.DrawFn, text: str) -> str:
    """`text` as someone typed it: spacing, punctuation, case and Unicode form at random."""
    words = text.split()
    out = []
    for w in words:
        chars = []
        for ch in w:
            how = draw(st.sampled_from(["same"] * 6 + ["upper", "lower", "wide"]))
            if how == "upper":
                ch = ch.upper()
            elif how == "lower":
                ch = ch.lower()
            elif how == "wide" and "!" <= ch <= "~":
                ch = chr(ord(ch) + 0xFEE0)  # full-width form; NFKC makes it plain again
            if draw(st.integers(0, 9)) == 9:  # shrinks to no punctuation
                ch += draw(st.sampled_from(PUNCTUATION))
            chars.append(ch)
        out.append("".join(chars))
    joined = out[0]
    for w in out[1:]:
        joined += draw(st.sampled_from(SEPARATORS)) + w
    joined = (
        draw(st.sampled_from(["", "", "", " ", "."]))
        + joined
        + draw(st.sampled_from(["", "", ".", " ", "!"]))
    )
    return unicodedata.normalize(draw(st.sampled_from(["NFC", "NFD"])), joined)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    bases = draw(st.lists(st.sampled_from(BASES), min_size=1, max_size=4, unique=True))
    comps = []
    for cid in range(10, 10 + draw(st.integers(1, 8))):
        name, ident = draw(st.sampled_from(bases))
        comps.append((cid, draw(typed(ident)), draw(typed(name))))

    def copied(value: str | None) -> str | None:
        """A company's value as the strict fold still equates it: case and surrounding spaces."""
        if value is None:
            return None
        how = draw(st.sampled_from(["same", "upper", "lower", "spaced"]))
        return {"same": value, "upper": value.upper(), "lower": value.lower(), "spaced": f" {value} "}[how]

    orgs = []
    for oid in range(1, 1 + draw(st.integers(1, 8))):
        # Mostly a company's own name or identifier (the strict fold finds it), else a fresh typing.
        company = draw(st.sampled_from(comps))
        name_, ident_ = draw(st.sampled_from(bases))
        key = (
            copied(company[1]) if draw(st.booleans()) else draw(st.sampled_from([None, draw(typed(ident_))]))
        )
        name = copied(company[2]) if draw(st.booleans()) else draw(typed(name_))
        orgs.append((oid, name, key, draw(st.sampled_from([1, 1, 1, 2]))))
    org_map = [(o[0], draw(st.sampled_from(comps))[0]) for o in orgs if draw(st.integers(0, 9)) == 9]
    return {"orgs": orgs, "comps": comps, "org_map": org_map}


@given(cases())
def test_no_organization_is_matched_to_one_of_two_companies_that_fold_alike(case: dict[str, Any]) -> None:
    orgs, comps = orgs_of(*case["orgs"]), companies_of(*case["comps"])
    org_map = org_map_of(*case["org_map"]) if case["org_map"] else frames.empty("org_map")
    out = rc.match_organizations(orgs, comps, org_map)

    # Every organization ends in exactly one status.
    assert sorted(out["organization_id"]) == [o[0] for o in case["orgs"]]
    assert set(out["status"]) <= {"matched", "unmapped", "ambiguous"}
    assert (out["company_id"].notna() == (out["status"] == "matched")).all()

    ident = {c: i for c, i, _ in case["comps"]}
    name = {c: n for c, _, n in case["comps"]}
    org = {o[0]: o for o in case["orgs"]}
    mapped = {o for o, _ in case["org_map"]}
    for r in out.to_dict("records"):
        o = org[r["organization_id"]]
        if r["organization_id"] in mapped:  # a billing_org_map row always decides
            assert r["match_rule"] == "org_map"
            continue
        assert r["match_rule"] != "org_map"
        value = {"key": ident, "name": name}.get(r["match_rule"])
        mine = o[2] if r["match_rule"] == "key" else o[1]
        if r["status"] == "matched" and value is not None:
            c = int(r["company_id"])
            twins = [x for x in value if x != c and loose(value[x]) == loose(value[c])]
            assert not twins, (r, value[c], [value[x] for x in twins])
            # The loose fold never finds a company by itself: the strict fold did.
            if r["match_rule"] == "key":
                assert mine.strip().casefold() == value[c].strip().casefold()
            else:
                assert rc.normalize_name(mine) == rc.normalize_name(value[c])
        if r["status"] == "ambiguous" and value is not None:
            # The candidates are every company of the same letters and digits, and the detail names them.
            expected = sorted(x for x in value if loose(value[x]) == loose(mine))
            assert r["candidate_company_ids"] == ",".join(map(str, expected)), (r, mine, value)
            assert all(str(x) in r["detail"] for x in expected)


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_ascii_names_fold_as_any_text_does(name: str) -> None:
    """The ASCII shortcuts (no NFKC) give what the general folds give, for every ASCII string:
    controls, whitespace, punctuation and symbols included."""
    from billing_sync.reconcile.matching import _LOOSE, _normalize_any, loose_fold

    assert rc.normalize_name(name) == _normalize_any(name)
    assert loose_fold(name) == _normalize_any(name).translate(_LOOSE)
