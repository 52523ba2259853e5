"""reconcile/suspicious.py: key matches whose names share nothing, companies several organizations
share, and the pairing an unmapped organization and a company missing from the invoice suggest."""

from __future__ import annotations

import pandas as pd
import pytest

from billing_sync import frames
from billing_sync import reconcile as rc
from billing_sync.reconcile import suspicious as sus
from tests.sync.reconcile import companies_of, org_map_of, orgs_of


def missing_of(*rows: tuple[int, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "company_id": pd.array([r[0] for r in rows], dtype="Int64"),
            "product": pd.array([r[1] for r in rows], dtype="string"),
        }
    )


def find(
    orgs: pd.DataFrame,
    comps: pd.DataFrame,
    org_map: pd.DataFrame | None = None,
    missing: pd.DataFrame | None = None,
) -> list[sus.Finding]:
    matches = rc.match_organizations(orgs, comps, org_map if org_map is not None else frames.empty("org_map"))
    return sus.find_suspicious(matches, orgs, comps, missing if missing is not None else missing_of())


# --- the words of names ---------------------------------------------------------------------------


def test_significant_words_drop_case_punctuation_and_legal_forms() -> None:
    assert sus.significant_words("Tidewater Marketing Pty Ltd") == ("tidewater", "marketing")
    assert sus.significant_words("ACME, Inc.") == sus.significant_words("Acme Inc") == ("acme",)
    assert sus.significant_words("Rossi Academy GmbH") == sus.significant_words("Rossi Academy S.A.")
    assert sus.significant_words(pd.NA) == sus.significant_words("  LLC ") == ()


@pytest.mark.parametrize(
    ("a", "b", "differ"),
    [
        ("tidewater marketing pty ltd", "Fitzgerald Landscaping LLP", True),  # issue 20's case
        ("Acme Inc", "ACME, Inc.", False),  # the same name
        ("Harbourview", "Harborview Logistics", False),  # no common word, but one typo: 0.9 similar
        ("Pioneer Marketing", "Tidewater Marketing", False),  # a common word
        ("Acme Group", "Zenith Group", True),  # "group" is no word of either name
        ("Inc.", "Fitzgerald Landscaping", False),  # nothing to compare
    ],
)
def test_share_nothing(a: str, b: str, differ: bool) -> None:
    assert sus.share_nothing(a, b) is differ


@pytest.mark.parametrize(
    ("a", "b", "alike"),
    [
        ("Parkside Physical Therapy", "Parkside PT LLC", True),  # initials
        ("Delta Engineering", "Delta Eng", True),  # an abbreviation
        ("Cedar Point Property Management", "Cedar Point Property Mgmt, Inc.", True),
        ("Eriksen's Pharmacy", "Eriksen Pharmacy", True),  # very close (0.97)
        ("Acme Inc", "ACME, Inc.", True),
        ("Summit Dental", "Sunrise Dental", False),  # one industry, two businesses (0.74)
        ("Parkside Printing", "Parkside PT", False),  # two letters abbreviate only as initials
        ("Fitzgerald Landscaping", "Fitzgerald Machining", False),
        ("PT Partners", "Physical Therapy", False),  # no word spelled out alike
    ],
)
def test_read_alike(a: str, b: str, alike: bool) -> None:
    assert sus.read_alike(a, b) is alike


# --- names_differ ---------------------------------------------------------------------------------


def test_a_key_match_whose_names_share_nothing_is_flagged() -> None:
    orgs = orgs_of((137, "tidewater marketing pty ltd", "fitzgeraldlandscaping"), (1, "Acme", "acme"))
    comps = companies_of(
        (378, "FitzgeraldLandscaping", "Fitzgerald Landscaping LLP"), (10, "ACME", "ACME, Inc.")
    )
    found = find(orgs, comps)
    assert [(f.kind, f.organization_ids, f.company_id, f.match_rule) for f in found] == [
        ("names_differ", (137,), 378, "key")
    ]
    f = found[0]
    assert f.organization_names == ("tidewater marketing pty ltd",)
    assert f.company_name == "Fitzgerald Landscaping LLP"
    assert "tidewater marketing pty ltd" in f.explanation and "Fitzgerald Landscaping LLP" in f.explanation
    assert "key" in f.explanation and "\n" not in f.explanation


def test_a_near_identical_key_match_is_no_finding() -> None:
    orgs = orgs_of((1, "Acme Inc", "acme"), (2, "Harbourview Logistics", "hv"))
    comps = companies_of((10, "acme", "ACME, Inc."), (20, "HV", "Harborview Logistic LLC"))
    assert find(orgs, comps) == []


def test_names_of_a_billing_org_map_row_are_the_persons_choice() -> None:
    orgs = orgs_of((137, "tidewater marketing pty ltd", "nothing"))
    comps = companies_of((378, "FitzgeraldLandscaping", "Fitzgerald Landscaping LLP"))
    assert find(orgs, comps, org_map_of((137, 378))) == []


# --- shared_company -------------------------------------------------------------------------------


def test_two_organizations_mapped_to_one_company_are_flagged_whatever_the_rules() -> None:
    orgs = orgs_of((2, "Acme West", "acme"), (1, "Acme East", "east"), (3, "Zenith", "zenith"))
    comps = companies_of((10, "acme", "Acme"), (30, "zenith", "Zenith"))
    found = find(orgs, comps, org_map_of((1, 10)))
    assert [(f.kind, f.organization_ids, f.company_id) for f in found] == [("shared_company", (1, 2), 10)]
    f = found[0]
    assert f.organization_names == ("Acme East", "Acme West")
    assert f.match_rule == "org_map,key"  # in the rules' order
    assert "check this is intended" in f.explanation and "both" in f.explanation


def test_an_ambiguous_or_unmapped_organization_shares_no_company() -> None:
    orgs = orgs_of((1, "Twin", "t1"), (2, "Twin", "t2"), (3, "Solo", "solo"))
    comps = companies_of((20, "x", "Twin"), (21, "y", "twin"), (30, "solo", "Solo"))
    assert find(orgs, comps) == []


# --- pairing_suggested ----------------------------------------------------------------------------


def test_an_unmapped_organization_named_like_a_company_missing_from_the_invoice_is_paired() -> None:
    orgs = orgs_of((125, "Parkside Physical Therapy", "parkside-physical-therapy"), (1, "Acme", "acme"))
    comps = companies_of((374, "ParksidePTLLC", "Parkside PT LLC"), (10, "acme", "Acme"))
    found = find(orgs, comps, missing=missing_of((374, "sat"), (374, "edr"), (374, "edr")))
    assert [(f.kind, f.organization_ids, f.company_id, f.match_rule) for f in found] == [
        ("pairing_suggested", (125,), 374, None)
    ]
    assert "(edr, sat)" in found[0].explanation and "Parkside PT LLC" in found[0].explanation


def test_no_pairing_without_missing_rows_or_for_a_mapped_organization() -> None:
    orgs = orgs_of((125, "Parkside Physical Therapy", "p"), (126, "Sunrise Dental", "sunrise"))
    comps = companies_of((374, "ParksidePTLLC", "Parkside PT LLC"), (380, "sunrise", "Sunrise Dental LLC"))
    assert find(orgs, comps) == []  # the company's additions are not missing: nothing to suggest
    # a mapped organization (here by key) is no pairing, though its company's rows are missing
    assert [f.kind for f in find(orgs, comps, missing=missing_of((380, "edr")))] == []


def test_no_pairing_when_two_companies_read_alike() -> None:
    orgs = orgs_of((125, "Parkside Physical Therapy", "p"))
    comps = companies_of((374, "a", "Parkside PT LLC"), (375, "b", "Parkside Phys Therapy"))
    assert find(orgs, comps, missing=missing_of((374, "edr"), (375, "edr"))) == []
    # with only one of them missing from the invoice, that one is the suggestion
    assert [f.company_id for f in find(orgs, comps, missing=missing_of((375, "edr")))] == [375]


def test_a_company_not_staged_is_never_suggested() -> None:
    orgs = orgs_of((125, "Parkside Physical Therapy", "p"))
    comps = companies_of((10, "acme", "Acme"))
    assert find(orgs, comps, missing=missing_of((374, "edr"))) == []


def test_findings_come_pairings_first() -> None:
    orgs = orgs_of(
        (137, "tidewater marketing pty ltd", "fitz"),
        (125, "Parkside Physical Therapy", "p"),
        (1, "Acme East", "acme"),
        (2, "Acme West", "w"),
    )
    comps = companies_of(
        (378, "fitz", "Fitzgerald Landscaping LLP"), (374, "x", "Parkside PT"), (10, "acme", "Acme")
    )
    found = find(orgs, comps, org_map_of((2, 10)), missing_of((374, "edr")))
    assert [f.kind for f in found] == ["pairing_suggested", "names_differ", "shared_company"]
