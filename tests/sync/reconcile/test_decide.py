"""reconcile/decide.py: one outcome per key (and its reason), the guard."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from billing_sync import names
from billing_sync.config import Settings
from tests.sync.reconcile import (
    ABSENT,
    ACME,
    PRODUCTS,
    acme,
    addition,
    additions_of,
    companies_of,
    key,
    line,
    orgs_of,
    run,
    usage_of,
)

# --------------------------------------------------------------------------------------------
# Outcomes


def test_change_carries_old_and_new_quantity() -> None:
    row = acme(edr=40, quantity=38)
    assert row["outcome"] == "change" and pd.isna(row["reason_code"])
    assert (row["huntress_quantity"], row["previous_quantity"], row["new_quantity"]) == (40, 38.0, 40)
    assert (row["agreement_id"], row["addition_id"]) == (2500, 501)
    assert row["catalog_identifier"] == "HUNTRESS-EDR"
    assert row["company_name"] == "Acme Corp" and row["organization_ids"] == "101"
    assert row["organization_names"] == "Acme Corp" and row["match_rule"] == "key"
    assert row["detail"] == "edr 38 → 40 (+2)"


def test_unchanged() -> None:
    row = acme(edr=38, quantity=38)
    assert row["outcome"] == "unchanged" and pd.isna(row["reason_code"])
    assert row["new_quantity"] == 38 and row["addition_id"] == 501


def test_not_applicable_zero_usage_without_addition() -> None:
    out = run(usage_of(line(101, "Acme Corp", edr=0)))
    assert set(out["outcome"]) == {"not_applicable"}
    assert out["sync_key"].tolist() == [f"company:250:{p}" for p in sorted(PRODUCTS)]


def test_no_live_addition() -> None:
    out = run(usage_of(line(101, "Acme Corp", edr=7)))
    row = key(out, "company:250:edr")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "no_live_addition")
    assert row["huntress_quantity"] == 7 and "HUNTRESS-EDR" in row["detail"]


def test_no_live_addition_detail_says_why_others_are_not_live() -> None:
    adds = additions_of(addition(501, 250, "edr", 38, agreement_status="Expired"))
    row = key(run(usage_of(line(101, edr=7)), additions=adds), "company:250:edr")
    assert row["reason_code"] == "no_live_addition"
    assert "addition 501" in row["detail"] and "agreement status 'Expired'" in row["detail"]


def test_zero_usage_with_live_addition_is_a_change_to_zero_when_allowed() -> None:
    row = acme(edr=0, quantity=4, settings=Settings(allow_drop_to_zero=True))
    assert row["outcome"] == "change" and row["new_quantity"] == 0


def test_duplicate_addition_lists_additions_and_agreements() -> None:
    adds = additions_of(
        addition(501, 250, "edr", 38, agreement_id=1578, agreement_name="Managed Security"),
        addition(502, 250, "edr", 2, agreement_id=1579, agreement_name="Security Extra"),
    )
    row = key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "duplicate_addition")
    assert pd.isna(row["addition_id"]) and pd.isna(row["previous_quantity"])
    for text in ("501", "502", "1578", "1579", "Managed Security", "Security Extra"):
        assert text in row["detail"]


def test_duplicate_on_one_agreement_too() -> None:
    adds = additions_of(
        addition(501, 250, "edr", 38, agreement_id=1578), addition(502, 250, "edr", 2, agreement_id=1578)
    )
    assert (
        key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")["reason_code"]
        == "duplicate_addition"
    )


@pytest.mark.parametrize("quantity", [None, -3, 2.5])
def test_invalid_addition_quantity(quantity: Any) -> None:
    row = acme(edr=40, quantity=quantity)
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "invalid_addition")
    assert row["addition_id"] == 501 and pd.isna(row["new_quantity"])
    assert "not a whole non-negative number" in row["detail"]


def test_addition_issue_column_makes_it_invalid_addition() -> None:
    adds = additions_of(addition(501, 250, "edr", 38))
    adds["issue"] = pd.array(["quantity below the agreed floor"], dtype="string")
    row = key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")
    assert (row["reason_code"], row["addition_id"]) == ("invalid_addition", 501)
    assert "fails the check “quantity below the agreed floor”" in row["detail"]
    adds["issue"] = pd.array([" "], dtype="string")  # blank names no failed expectation
    assert key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")["outcome"] == "change"


def test_unmapped_organization() -> None:
    out = run(usage_of(line(102, "Nobody Inc", edr=5)), organizations=orgs_of((102, "Nobody Inc", "nobody")))
    row = key(out, "organization:102:edr")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "unmapped_organization")
    assert pd.isna(row["company_id"]) and row["organization_ids"] == "102"
    assert row["huntress_quantity"] == 5 and "'nobody'" in row["detail"]
    # The organization's zero-usage products need nothing.
    assert key(out, "organization:102:itdr")["outcome"] == "not_applicable"


def test_unmapped_organization_with_invalid_usage_is_quarantined_for_the_mapping() -> None:
    out = run(
        usage_of(line(102, "Nobody Inc", edr=-1, itdr="7", sat=ABSENT, siem=None)),
        organizations=orgs_of((102, "Nobody Inc", None)),
    )
    for product in ("edr", "itdr"):
        row = key(out, f"organization:102:{product}")
        assert row["reason_code"] == "unmapped_organization"
        assert "usage also invalid" in row["detail"] and pd.isna(row["huntress_quantity"])
    # Absent or null: no company, so no live addition: 0, nothing to do.
    for product in ("sat", "siem"):
        row = key(out, f"organization:102:{product}")
        assert (row["outcome"], row["huntress_quantity"]) == ("not_applicable", 0)


def test_ambiguous_company_match() -> None:
    comps = companies_of((250, "acme", "Acme Corp"), (251, "ACME", "Acme Corporation"))
    out = run(usage_of(line(101, edr=5)), companies=comps)
    row = key(out, "organization:101:edr")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "ambiguous_company_match")
    assert "250 'Acme Corp'" in row["detail"] and "251 'Acme Corporation'" in row["detail"]
    assert row["match_rule"] == "key"
    assert key(out, "organization:101:itdr")["outcome"] == "not_applicable"  # valid zero usage


def test_missing_from_invoice() -> None:
    comps = companies_of(ACME, (260, "gone", "Gone Ltd"))
    adds = additions_of(
        addition(501, 250, "edr", 40), addition(601, 260, "edr", 12, agreement_name="Old Deal")
    )
    out = run(usage_of(line(101, edr=40)), companies=comps, additions=adds)
    row = key(out, "company:260:edr")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "missing_from_invoice")
    assert (row["previous_quantity"], row["addition_id"], row["agreement_id"]) == (12.0, 601, 2600)
    assert row["company_name"] == "Gone Ltd" and pd.isna(row["organization_ids"])
    assert "601" in row["detail"] and "Old Deal" in row["detail"]
    assert key(out, "company:250:edr")["outcome"] == "unchanged"
    assert len(out) == 5  # 4 products of Acme + the missing one; Gone Ltd has no other additions


def test_missing_from_invoice_with_two_live_additions_has_no_previous_quantity() -> None:
    comps = companies_of(ACME, (260, "gone", "Gone Ltd"))
    adds = additions_of(
        addition(601, 260, "sat", 12, agreement_id=1), addition(602, 260, "sat", 3, agreement_id=2)
    )
    row = key(run(usage_of(line(101)), companies=comps, additions=adds), "company:260:sat")
    assert row["reason_code"] == "missing_from_invoice" and pd.isna(row["previous_quantity"])
    assert "601" in row["detail"] and "602" in row["detail"]


def test_company_on_invoice_without_a_count_for_the_product_is_invalid_usage() -> None:
    # The usage frame was built for edr only, but sat is configured and has a live addition.
    usage = usage_of(line(101, edr=40), products=("edr",))
    adds = additions_of(addition(501, 250, "edr", 40), addition(502, 250, "sat", 30))
    row = key(run(usage, additions=adds), "company:250:sat")
    assert row["reason_code"] == "invalid_usage" and "carry no sat count" in row["detail"]


def test_invalid_usage() -> None:
    row = acme(edr=-5)
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "invalid_usage")
    assert pd.isna(row["huntress_quantity"]) and row["addition_id"] == 501
    assert row["detail"] == "organization 101 'Acme Corp', edr = -5: negative"


def test_change_exceeds_limit() -> None:
    row = acme(edr=5, quantity=40)
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "change_exceeds_limit")
    assert row["detail"] == "edr 40 → 5 (−35, −87.5%) exceeds max_change_units=10 and max_change_ratio=0.5"
    assert row["previous_quantity"] == 40 and row["huntress_quantity"] == 5 and pd.isna(row["new_quantity"])


def test_push_stage_reasons_are_known_with_help() -> None:
    assert list(names.REASON_CODES)[:9] == [
        "unmapped_organization",
        "ambiguous_company_match",
        "no_live_addition",
        "duplicate_addition",
        "invalid_usage",
        "change_exceeds_limit",
        "missing_from_invoice",
        "changed_since_read",
        "push_rejected",
    ]
    assert "invalid_addition" in names.REASON_CODES
    assert set(names.REASON_HELP) == set(names.REASON_CODES) and all(names.REASON_HELP.values())


# --------------------------------------------------------------------------------------------
# Guard


@pytest.mark.parametrize(
    ("old", "new", "allow", "outcome"),
    [
        (40, 50, False, "change"),  # exactly max_change_units (10): not held
        (100, 115, False, "change"),  # units exceeded, ratio not (15 <= 50)
        (4, 10, False, "change"),  # ratio exceeded (6 > 2), units not
        (40, 5, False, "quarantined"),  # both exceeded
        (40, 61, False, "quarantined"),  # both exceeded upwards (21 > 10, 21 > 20)
        (40, 60, False, "change"),  # ratio exactly 0.5 × 40: not held
        (0, 10, False, "change"),  # from 0: units decide
        (0, 11, False, "quarantined"),  # from 0: any ratio is exceeded
        (5, 0, False, "quarantined"),  # small drop to zero, not allowed
        (5, 0, True, "change"),  # small drop to zero, allowed
        (40, 0, True, "quarantined"),  # allowed, but the units/ratio guard still holds it
        (0, 0, False, "unchanged"),
    ],
)
def test_guard(old: int, new: int, allow: bool, outcome: str) -> None:
    row = acme(edr=new, quantity=old, settings=Settings(allow_drop_to_zero=allow))
    assert row["outcome"] == outcome
    if outcome == "quarantined":
        assert row["reason_code"] == "change_exceeds_limit"
    if outcome == "change":
        assert row["new_quantity"] == new


def test_guard_details() -> None:
    assert (
        acme(edr=0, quantity=5)["detail"]
        == "edr 5 → 0 (−5, −100.0%) drop from 5 to 0 needs allow_drop_to_zero"
    )
    assert acme(edr=0, quantity=40)["detail"] == (
        "edr 40 → 0 (−40, −100.0%) exceeds max_change_units=10 and max_change_ratio=0.5; "
        "drop from 40 to 0 needs allow_drop_to_zero"
    )
    assert (
        acme(edr=11, quantity=0)["detail"]
        == "edr 0 → 11 (+11) exceeds max_change_units=10 and max_change_ratio=0.5"
    )


def test_guard_uses_settings() -> None:
    loose = Settings(max_change_units=100, max_change_ratio=0.0)
    assert acme(edr=5, quantity=40, settings=loose)["outcome"] == "change"
    strict = Settings(max_change_units=0, max_change_ratio=0.0)
    assert acme(edr=39, quantity=40, settings=strict)["reason_code"] == "change_exceeds_limit"
