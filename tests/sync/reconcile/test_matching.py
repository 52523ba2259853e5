"""reconcile/matching.py: organization → company rules and the name fold."""

from __future__ import annotations

import pandas as pd
import pytest

from billing_sync import frames
from billing_sync import reconcile as rc
from billing_sync.reconcile.matching import loose_fold
from tests.sync.reconcile import (
    companies_of,
    key,
    line,
    org_map_of,
    orgs_of,
    run,
    usage_of,
)


def match(orgs: pd.DataFrame, comps: pd.DataFrame, org_map: pd.DataFrame | None = None) -> dict[int, dict]:
    result = rc.match_organizations(orgs, comps, org_map if org_map is not None else frames.empty("org_map"))
    assert list(result.columns) == [
        "organization_id",
        "company_id",
        "match_rule",
        "status",
        "candidate_company_ids",
        "detail",
    ]
    assert sorted(result["organization_id"]) == sorted(orgs["organization_id"].dropna().unique())
    return {int(r["organization_id"]): r for r in result.to_dict("records")}


def test_org_map_beats_key_beats_name() -> None:
    orgs = orgs_of((1, "Alpha", "alpha"), (2, "Beta", "beta"), (3, "Gamma", "gamma"))
    comps = companies_of((10, "alpha", "Beta"), (11, "x", "Gamma"), (12, "y", "Alpha"), (13, "z", "Delta"))
    m = match(orgs, comps, org_map_of((1, 13)))
    assert (m[1]["company_id"], m[1]["match_rule"]) == (13, "org_map")  # not 10 (key) or 12 (name)
    assert (m[2]["company_id"], m[2]["match_rule"]) == (10, "name")
    assert (m[3]["company_id"], m[3]["match_rule"]) == (11, "name")
    m = match(orgs, comps)
    assert (m[1]["company_id"], m[1]["match_rule"], m[1]["status"]) == (
        10,
        "key",
        "matched",
    )  # key beats name


def test_key_match_is_case_insensitive() -> None:
    m = match(orgs_of((1, "Whatever", " AcMe ")), companies_of((10, "ACME", "Other")))
    assert (m[1]["company_id"], m[1]["match_rule"]) == (10, "key") and pd.isna(m[1]["detail"])


def test_ambiguous_at_key_level_even_if_name_is_unique() -> None:
    comps = companies_of((10, "acme", "Acme Corp"), (11, "ACME", "Other"))
    m = match(orgs_of((1, "Acme Corp", "acme")), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == (
        "ambiguous",
        "key",
        "10,11",
    )
    assert pd.isna(m[1]["company_id"])


def test_ambiguous_at_name_level() -> None:
    comps = companies_of((12, "a", "Acme Corp."), (11, "b", "ACME  corp"), (13, "c", "Acme Corp Ltd"))
    m = match(orgs_of((1, "Acme Corp", None)), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == (
        "ambiguous",
        "name",
        "11,12",
    )
    assert "match companies 11,12" in m[1]["detail"]


# --------------------------------------------------------------------------------------------
# Never guess (docs/contract.md §2): a key or name match counts only when no other company is the
# same once everything but letters and digits is dropped and case is folded.


def test_name_match_with_a_punctuation_twin_is_ambiguous() -> None:
    # "Blue Bird Dental" and "Blue-Bird Dental" differ under the name fold (punctuation is dropped,
    # spaces kept); a person reading both would not know which one the organization is.
    comps = companies_of(
        (12, "bbd", "Blue Bird Dental"), (13, "bbd2", "Blue-Bird Dental"), (14, "o", "Other")
    )
    m = match(orgs_of((1, "Blue Bird Dental", None), (2, "Other", None)), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == (
        "ambiguous",
        "name",
        "12,13",
    )
    assert pd.isna(m[1]["company_id"])
    assert m[1]["detail"] == (
        "name 'Blue Bird Dental' matches companies 12 'Blue Bird Dental', 13 'Blue-Bird Dental' "
        "once punctuation, spacing and case are ignored"
    )
    assert (m[2]["status"], m[2]["company_id"]) == ("matched", 14)


def test_key_match_with_a_punctuation_twin_is_ambiguous() -> None:
    comps = companies_of((12, "ACME-1", "Acme One"), (13, "ACME1", "Acme 1"), (14, "beta", "Beta"))
    m = match(orgs_of((1, "Whatever", "acme1"), (2, "Whatever else", "Acme-1"), (3, "X", "BETA")), comps)
    for org in (1, 2):  # found by either identifier: both are candidates
        assert (m[org]["status"], m[org]["match_rule"], m[org]["candidate_company_ids"]) == (
            "ambiguous",
            "key",
            "12,13",
        )
    assert m[1]["detail"] == (
        "key 'acme1' matches companies 12 'Acme One' (identifier 'ACME-1'), 13 'Acme 1' (identifier 'ACME1') "
        "once punctuation, spacing and case are ignored"
    )
    assert (m[3]["status"], m[3]["match_rule"], m[3]["company_id"]) == ("matched", "key", 14)


def test_key_twin_is_ambiguous_even_when_the_name_is_unique() -> None:
    # The key rule found a company, so it decides: the name rule does not get to pick one.
    comps = companies_of((12, "ACME 1", "Acme One"), (13, "acme1", "Acme Two"))
    m = match(orgs_of((1, "Acme One", "ACME1")), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == (
        "ambiguous",
        "key",
        "12,13",
    )


@pytest.mark.parametrize("org_name", ["Acme Corp", "Acme-Corp", "ACME CORP.", "AcmeCorp"])
def test_the_contracts_examples_are_one_name(org_name: str) -> None:
    comps = companies_of(
        (10, "a", "Acme Corp"), (11, "b", "Acme-Corp"), (12, "c", "ACME CORP."), (13, "d", "AcmeCorp")
    )
    m = match(orgs_of((1, org_name, None)), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == (
        "ambiguous",
        "name",
        "10,11,12,13",
    )
    for c in ("10 'Acme Corp'", "11 'Acme-Corp'", "12 'ACME CORP.'", "13 'AcmeCorp'"):
        assert c in m[1]["detail"]


@pytest.mark.parametrize(
    ("found_by", "twin"),
    [
        ("Acme Corp", "Acme-Corp"),
        ("Acme-Corp", "ACME CORP."),
        ("ACME CORP.", "AcmeCorp"),
        ("AcmeCorp", "Acme Corp"),
    ],
)
def test_the_contracts_examples_pairwise(found_by: str, twin: str) -> None:
    m = match(orgs_of((1, found_by, None)), companies_of((10, "a", found_by), (11, "b", twin)))
    assert (m[1]["status"], m[1]["candidate_company_ids"]) == ("ambiguous", "10,11")


def test_twins_in_unicode_forms_and_spacing_are_ambiguous() -> None:
    comps = companies_of(
        (10, "a", "Café Lumière"),  # NFC
        (11, "b", "CAFE\u0301 LUMIE\u0300RE"),  # NFD, upper case: the same name under the strict fold
        (12, "c", "ＣａｆéＬｕｍｉèｒｅ"),  # full-width letters, no space
        (13, "d", "Cafe Lumiere"),  # no accents: another name, even under the loose fold
    )
    m = match(orgs_of((1, "café lumière", None)), comps)
    assert (m[1]["status"], m[1]["candidate_company_ids"]) == ("ambiguous", "10,11,12")
    m = match(orgs_of((1, "Cafe Lumiere", None)), comps)
    assert (m[1]["status"], m[1]["company_id"]) == ("matched", 13)


def test_org_map_decides_even_when_companies_collide() -> None:
    comps = companies_of((12, "ACME-1", "Blue Bird Dental"), (13, "ACME1", "Blue-Bird Dental"))
    m = match(orgs_of((1, "Blue Bird Dental", "acme1")), comps, org_map_of((1, 13)))
    assert (m[1]["status"], m[1]["match_rule"], m[1]["company_id"]) == ("matched", "org_map", 13)
    assert pd.isna(m[1]["candidate_company_ids"]) and pd.isna(m[1]["detail"])


def test_strict_match_without_a_loose_twin_still_matches() -> None:
    comps = companies_of(
        (12, "BBD", "Blue Bird Dental"),
        (13, "BBD-2", "Blue Bird Dentistry"),  # differs in letters: no twin
        (14, "x", "Blue Bird Dental 2"),  # differs in a digit: no twin
        (15, "y", "Café Blue Bird Dental"),
    )
    m = match(orgs_of((1, "BLUE  BIRD, DENTAL", None), (2, "Nothing", "bbd")), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["company_id"]) == ("matched", "name", 12)
    assert (m[2]["status"], m[2]["match_rule"], m[2]["company_id"]) == ("matched", "key", 12)
    assert pd.isna(m[1]["detail"]) and pd.isna(m[1]["candidate_company_ids"])


def test_the_loose_fold_alone_never_matches() -> None:
    comps = companies_of((12, "ACME1", "Blue Bird Dental"))
    m = match(orgs_of((1, "Blue-Bird Dental", "ACME-1"), (2, "BlueBird Dental", None)), comps)
    for org in (1, 2):
        assert (m[org]["status"], m[org]["match_rule"]) == ("unmapped", None) and pd.isna(
            m[org]["company_id"]
        )


def test_loose_fold_alone_does_not_decide_a_rule_the_next_rule_can() -> None:
    # The key matches only loosely ("ACME-1" vs "ACME1"): no key match, so the name rule decides.
    comps = companies_of((12, "ACME1", "Other Co"), (13, "z", "Acme One"))
    m = match(orgs_of((1, "Acme One", "ACME-1")), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["company_id"]) == ("matched", "name", 13)


def test_a_quarantined_twin_names_each_candidate_once() -> None:
    orgs = orgs_of((101, "Blue Bird Dental", None))
    comps = companies_of((12, "bbd", "Blue Bird Dental"), (13, "bbd2", "Blue-Bird Dental"))
    row = key(run(usage_of(line(101, "Blue Bird Dental", edr=5)), orgs, comps), "organization:101:edr")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "ambiguous_company_match")
    assert row["detail"] == (
        "organization 101 'Blue Bird Dental': name 'Blue Bird Dental' matches companies 12 'Blue Bird Dental', "
        "13 'Blue-Bird Dental' once punctuation, spacing and case are ignored; edr usage 5"
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme Corp", "AcmeCorp"),
        ("Acme-Corp", "ACME CORP."),
        ("ACME-1", "acme1"),
        ("Ｂｌｕｅ Bird", "blue-bird"),
        ("Cafe\u0301", "CAFÉ"),
        ("Acme™ Corp", "acme corp"),
    ],
)
def test_loose_fold_equates(a: str, b: str) -> None:
    assert loose_fold(a) == loose_fold(b)


@pytest.mark.parametrize(
    ("a", "b"), [("Café", "Cafe"), ("Acme 1", "Acme 2"), ("Acme Corp", "Acme Corporation")]
)
def test_loose_fold_keeps_letters_and_digits(a: str, b: str) -> None:
    assert loose_fold(a) != loose_fold(b)


def test_org_map_to_a_missing_company_is_unmapped() -> None:
    m = match(orgs_of((1, "Acme Corp", "acme")), companies_of((10, "acme", "Acme Corp")), org_map_of((1, 99)))
    assert (m[1]["status"], m[1]["match_rule"]) == ("unmapped", "org_map") and pd.isna(m[1]["company_id"])
    assert "company 99" in m[1]["detail"] and "not in ConnectWise" in m[1]["detail"]


def test_org_map_with_two_companies_is_ambiguous() -> None:
    comps = companies_of((10, "a", "A"), (11, "b", "B"))
    m = match(orgs_of((1, "A", "a")), comps, org_map_of((1, 11), (1, 10), (1, 10)))
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == (
        "ambiguous",
        "org_map",
        "10,11",
    )


def test_na_keys_and_names_never_match() -> None:
    orgs = orgs_of((1, None, None), (2, "...", ""))
    comps = companies_of((10, None, None), (11, "", "!!!"))
    m = match(orgs, comps)
    assert {m[1]["status"], m[2]["status"]} == {"unmapped"}
    assert pd.isna(m[1]["match_rule"]) and "no billing_org_map row" in m[1]["detail"]


def test_key_carried_in_two_accounts_is_no_key_match() -> None:
    # Keys are unique within an account only: "acme" of account 1 and "ACME" of managed account 7.
    orgs = orgs_of((1, "Acme Corp", "acme", 1), (2, "Acme West", "ACME", 7), (3, "Beta", "beta", 7))
    comps = companies_of((10, "acme", "Acme Corp"), (11, "beta", "Beta Ltd"))
    m = match(orgs, comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["company_id"]) == (
        "matched",
        "name",
        10,
    )  # the name decides
    assert (m[2]["status"], m[2]["match_rule"]) == ("unmapped", None)
    assert m[2]["detail"] == (
        "no billing_org_map row; key 'ACME' is carried by organizations of Huntress accounts 1, 7 (keys are unique "
        "only within an account), so it is no key match; no company named like 'Acme West'"
    )
    assert (m[3]["match_rule"], m[3]["company_id"]) == ("key", 11)  # a key of one account still matches


def test_key_shared_with_an_organization_not_being_matched_counts() -> None:
    known = orgs_of((1, "Acme West", "acme", 7), (2, "Other", "acme", 1))
    comps = companies_of((10, "acme", "Acme Corp"))
    alone = rc.match_organizations(known.iloc[:1], comps, frames.empty("org_map"))
    assert alone["status"].tolist() == ["matched"]
    with_known = rc.match_organizations(known.iloc[:1], comps, frames.empty("org_map"), known)
    assert with_known["status"].tolist() == ["unmapped"] and "accounts 1, 7" in with_known["detail"][0]
    # reconcile passes every organization Huntress listed, not only those on the invoice.
    out = run(usage_of(line(1, "Acme West", edr=3)), known, comps)
    assert key(out, "organization:1:edr")["reason_code"] == "unmapped_organization"


def test_shared_key_of_an_unknown_account_and_org_map() -> None:
    orgs = orgs_of((1, "Acme West", "acme", None), (2, "Acme East", "acme", 1), (3, "Acme North", "Acme", 1))
    comps = companies_of((10, "acme", "Acme Corp"))
    m = match(orgs, comps, org_map_of((2, 10)))
    assert m[1]["status"] == "unmapped" and "accounts 1, unknown" in m[1]["detail"]
    assert (m[2]["match_rule"], m[2]["company_id"]) == ("org_map", 10)  # a billing_org_map row always decides
    assert m[3]["status"] == "unmapped"


def test_key_twice_in_one_account_still_matches() -> None:
    orgs = orgs_of((1, "Acme A", "acme", 5), (2, "Acme B", "ACME", 5))
    m = match(orgs, companies_of((10, "acme", "Acme Corp")))
    assert {m[1]["company_id"], m[2]["company_id"]} == {10}


def test_every_organization_is_covered_including_ones_without_usage() -> None:
    orgs = orgs_of(*[(i, f"Org {i}", f"k{i}") for i in range(1, 6)], (3, "Dup", "dup"))
    m = match(orgs, companies_of((10, "k2", "x")))
    assert sorted(m) == [1, 2, 3, 4, 5] and m[2]["status"] == "matched"


def test_invoice_org_missing_from_organizations_falls_back_to_the_line_name() -> None:
    out = run(usage_of(line(777, "Acme Corp", edr=3)), organizations=orgs_of())
    row = key(out, "company:250:edr")
    assert (row["match_rule"], row["organization_ids"], row["organization_names"]) == (
        "name",
        "777",
        "Acme Corp",
    )


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Acme Corp", "ACME CORP"),
        ("Acme, Inc.", "acme inc"),
        ("  Acme   Corp  ", "Acme Corp"),
        ("Acme-Corp", "AcmeCorp"),
        ("Acme_Corp", "acmecorp"),
        ("Acme Corp Ltd", "Acme Corp Ltd"),  # no-break space
        ("A.B.C. Ltd", "ABC Ltd"),
        ("O'Brien & Sons", "OBrien Sons"),
        ("ＡＣＭＥ　Corp", "acme corp"),  # full-width letters and space (NFKC)
        ("Straße GmbH", "STRASSE GMBH"),  # casefold
        ("Acme\tCorp\n", "Acme Corp"),
        ("Acme™ Corp®", "Acme Corp"),
        ("Acme\u200b Corp", "Acme Corp"),  # zero-width space (format char)
    ],
)
def test_normalize_name_folds(a: str, b: str) -> None:
    assert rc.normalize_name(a) == rc.normalize_name(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [("Acme Corp", "Acme Corporation"), ("Café", "Cafe"), ("Acme 1", "Acme 2"), ("Acme-Corp", "Acme Corp")],
)
def test_normalize_name_keeps_distinct_names_distinct(a: str, b: str) -> None:
    assert rc.normalize_name(a) != rc.normalize_name(b)


def test_normalize_names_series() -> None:
    s = pd.Series(["ACME, Inc.", None, "!!!", "acme inc"], index=[5, 6, 7, 8], dtype="string")
    out = rc.normalize_names(s)
    assert out.dtype == "string" and list(out.index) == [5, 6, 7, 8]
    assert out.tolist() == ["acme inc", pd.NA, pd.NA, "acme inc"]
    assert rc.normalize_names(pd.Series([], dtype="string")).empty
