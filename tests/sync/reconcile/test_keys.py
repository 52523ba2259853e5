"""reconcile/keys.py: usage rows → sync keys: several organizations, absent counts, products, invalid usage."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from billing_sync import frames
from billing_sync import reconcile as rc
from billing_sync.config import Settings
from billing_sync.errors import ConfigError
from tests.sync.reconcile import (
    ABSENT,
    ACME,
    BILLING,
    acme,
    addition,
    additions_of,
    check_shape,
    companies_of,
    key,
    line,
    org_map_of,
    orgs_of,
    run,
    usage_of,
)

# --------------------------------------------------------------------------------------------
# Several organizations → one company


def _two_orgs(edr_b: Any) -> pd.DataFrame:
    orgs = orgs_of((101, "Acme Corp", "acme"), (102, "Acme Branch", None))
    adds = additions_of(addition(501, 250, "edr", 40))
    return run(
        usage_of(line(101, edr=30), line(102, "Acme Branch", edr=edr_b)),
        orgs,
        additions=adds,
        org_map=org_map_of((102, 250)),
    )


def test_several_organizations_are_summed() -> None:
    row = key(_two_orgs(12), "company:250:edr")
    assert row["outcome"] == "change" and row["huntress_quantity"] == 42
    assert row["organization_ids"] == "101,102"
    assert row["organization_names"] == "Acme Corp; Acme Branch"
    assert row["match_rule"] == "org_map,key"


def test_one_invalid_organization_makes_the_company_key_invalid() -> None:
    out = _two_orgs("12")
    row = key(out, "company:250:edr")
    assert row["reason_code"] == "invalid_usage" and pd.isna(row["huntress_quantity"])
    assert row["detail"] == "organization 102 'Acme Branch', edr = \"12\": a string, not a number"
    assert not out["sync_key"].str.startswith("organization:").any()


# --------------------------------------------------------------------------------------------
# Absent or null counts (docs/contract.md §2): 0 without a live addition, invalid_usage with one


@pytest.mark.parametrize("missing", [ABSENT, None], ids=["absent", "null"])
def test_absent_or_null_product_without_live_addition_is_zero(missing: Any) -> None:
    out = run(
        usage_of(line(101, "Acme Corp", edr=40, sat=missing)),
        additions=additions_of(addition(501, 250, "edr", 40)),
    )
    row = key(out, "company:250:sat")
    assert (row["outcome"], row["huntress_quantity"]) == ("not_applicable", 0) and pd.isna(row["reason_code"])
    assert key(out, "company:250:edr")["outcome"] == "unchanged"


@pytest.mark.parametrize(
    ("missing", "said"),
    [(ABSENT, "sat = absent: absent from the invoice line"), (None, "sat = null: null on the invoice line")],
    ids=["absent", "null"],
)
def test_absent_or_null_product_with_live_addition_is_invalid_usage(missing: Any, said: str) -> None:
    adds = additions_of(addition(501, 250, "edr", 40), addition(502, 250, "sat", 30))
    row = key(run(usage_of(line(101, "Acme Corp", edr=40, sat=missing)), additions=adds), "company:250:sat")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "invalid_usage")
    assert pd.isna(row["huntress_quantity"]) and pd.isna(row["new_quantity"])  # never lowered to 0
    assert (row["addition_id"], row["previous_quantity"]) == (502, 30.0)
    assert row["detail"] == (
        f"organization 101 'Acme Corp', {said} (absent or null counts as 0 only where the company has no live "
        "HUNTRESS-SAT addition; live: addition 502 on agreement 2500 'Managed Security' (quantity 30))"
    )


def test_absent_product_with_two_live_additions_is_invalid_usage() -> None:
    adds = additions_of(
        addition(501, 250, "sat", 30, agreement_id=1), addition(502, 250, "sat", 2, agreement_id=2)
    )
    row = key(run(usage_of(line(101, sat=ABSENT)), additions=adds), "company:250:sat")
    assert row["reason_code"] == "invalid_usage" and "501" in row["detail"] and "502" in row["detail"]


def test_one_of_several_organizations_without_the_count_holds_a_company_with_a_live_addition() -> None:
    out = _two_orgs(ABSENT)
    row = key(out, "company:250:edr")
    assert (row["reason_code"], row["organization_ids"]) == ("invalid_usage", "101,102")
    assert pd.isna(row["huntress_quantity"]) and row["previous_quantity"] == 40
    assert row["detail"].startswith(
        "organization 102 'Acme Branch', edr = absent: absent from the invoice line ("
    )


def test_one_of_several_organizations_without_the_count_adds_nothing_without_a_live_addition() -> None:
    orgs = orgs_of((101, "Acme Corp", "acme"), (102, "Acme Branch", None))
    usage = usage_of(line(101, sat=12), line(102, "Acme Branch", sat=None, itdr=ABSENT))
    out = run(usage, orgs, org_map=org_map_of((102, 250)))
    row = key(out, "company:250:sat")
    assert (row["reason_code"], row["huntress_quantity"]) == ("no_live_addition", 12)
    assert key(out, "company:250:itdr")["outcome"] == "not_applicable"


def test_absent_actual_usage_is_absent_but_a_broken_one_is_invalid() -> None:
    adds = additions_of(addition(501, 250, "edr", 40))
    gone = {"id": 9101, "organization": {"id": 101, "name": "Acme Corp"}, "actual_usage": None}
    out = run(usage_of(gone), additions=adds)
    assert key(out, "company:250:edr")["reason_code"] == "invalid_usage"
    assert set(out.loc[out["product"] != "edr", "outcome"]) == {"not_applicable"}
    broken = {**gone, "actual_usage": "n/a"}
    out = run(usage_of(broken))  # no additions at all: still no count of 0 from a broken line
    assert set(out["reason_code"]) == {"invalid_usage"}
    assert 'sat = "n/a": a string, not a number' in key(out, "company:250:sat")["detail"]


# --------------------------------------------------------------------------------------------
# Products


def test_unconfigured_products_are_ignored() -> None:
    settings = Settings(products={"edr": "HUNTRESS-EDR"})
    comps = companies_of(ACME, (260, "gone", "Gone Ltd"))
    adds = additions_of(
        addition(501, 250, "edr", 38),
        addition(502, 250, "sat", 1, identifier="HUNTRESS-SAT"),  # configured by default, not here
        addition(601, 260, "x", 3, identifier="SOMETHING-ELSE"),  # would be missing_from_invoice
    )
    out = run(usage_of(line(101, edr=40, sat=-1)), companies=comps, additions=adds, settings=settings)
    assert out["sync_key"].tolist() == ["company:250:edr"]
    assert out.loc[0, "outcome"] == "change"


def test_catalog_identifier_compares_exactly() -> None:
    adds = additions_of(addition(501, 250, "edr", 38, identifier="huntress-edr"))
    assert (
        key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")["reason_code"]
        == "no_live_addition"
    )


def test_custom_catalog_identifier() -> None:
    settings = Settings(products={"edr": "MY-EDR"})
    adds = additions_of(addition(501, 250, "edr", 38, identifier="MY-EDR"))
    row = key(run(usage_of(line(101, edr=40)), additions=adds, settings=settings), "company:250:edr")
    assert (row["outcome"], row["catalog_identifier"]) == ("change", "MY-EDR")


def test_two_products_on_one_catalog_identifier_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="edr, itdr"):
        run(usage_of(line(101)), settings=Settings(products={"edr": "X", "itdr": "X"}))


# --------------------------------------------------------------------------------------------
# Invalid usage kinds


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (-1, "edr = -1: negative"),
        (2.5, "edr = 2.5: fractional"),
        (12.0, "edr = 12.0: a decimal number, not an integer"),
        ("12", 'edr = "12": a string, not a number'),
        (None, "edr = null: null on the invoice line"),
        (ABSENT, "edr = absent: absent from the invoice line"),
        (True, "edr = true: a boolean, not a count"),
        (frames.MAX_USAGE + 1, "above the plausible maximum"),
    ],
)
def test_invalid_usage_kinds(value: Any, why: str) -> None:
    row = acme(edr=value)
    assert row["reason_code"] == "invalid_usage"
    assert row["detail"].startswith("organization 101 'Acme Corp', ") and why in row["detail"]


def test_issue_column_marks_a_row_invalid() -> None:
    usage = usage_of(line(101, edr=40, itdr=3))
    usage["issue"] = pd.Series([pd.NA] * len(usage), dtype="string")
    usage.loc[usage["product"] == "edr", "issue"] = "the usage count is a whole number from 0 to 10,000"
    out = run(usage, additions=additions_of(addition(501, 250, "edr", 38)))
    row = key(out, "company:250:edr")
    assert row["reason_code"] == "invalid_usage"
    assert row["detail"] == (
        "organization 101 'Acme Corp', edr = 40: fails the check “the usage count is a whole number from 0 to 10,000”"
    )
    assert key(out, "company:250:itdr")["reason_code"] == "no_live_addition"  # issue NA: row is fine


def test_duplicate_organization_on_the_invoice() -> None:
    usage = usage_of(line(101, line_id=1, edr=20), line(101, line_id=2, edr=20))
    out = run(usage, additions=additions_of(addition(501, 250, "edr", 40)))
    row = key(out, "company:250:edr")
    assert row["reason_code"] == "invalid_usage" and "appears on 2 invoice lines" in row["detail"]
    # Every product of the duplicated organization is affected, even zero counts.
    assert key(out, "company:250:siem")["reason_code"] == "invalid_usage"


def test_line_without_organization_id() -> None:
    usage = usage_of(line(None, "Mystery", line_id=77, edr=4), line(101, edr=38))
    out = run(usage, additions=additions_of(addition(501, 250, "edr", 38)))
    row = key(out, "line:77:edr")
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "invalid_usage")
    assert pd.isna(row["organization_ids"]) and row["organization_names"] == "Mystery"
    assert "line 77 has no organization id" in row["detail"]
    assert key(out, "line:77:siem")["reason_code"] == "invalid_usage"
    assert key(out, "company:250:edr")["outcome"] == "unchanged"


def test_empty_inputs() -> None:
    out = rc.reconcile(
        frames.empty("usage"),
        frames.empty("organizations"),
        frames.empty("companies"),
        frames.empty("additions"),
        frames.empty("org_map"),
        Settings(),
        BILLING,
    )
    check_shape(out)
    assert out.empty and rc.summarize(out)["total"] == 0
