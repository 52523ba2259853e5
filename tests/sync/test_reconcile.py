"""reconcile.py: matching rules, live additions, outcomes, the guard, and the one-key-per-row invariant."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from billing_sync import frames
from billing_sync import reconcile as rc
from billing_sync.config import ConfigError, Settings

BILLING = date(2026, 11, 1)
PRODUCTS = ("edr", "itdr", "sat", "siem")
CATALOG = {p: f"HUNTRESS-{p.upper()}" for p in PRODUCTS}
ABSENT = object()  # a product missing from a line's actual_usage


# --------------------------------------------------------------------------------------------
# Builders: API-shaped records through the frames helpers, as the extract tasks produce them.


def line(org_id: int | None, name: str | None = None, line_id: int | None = None, **usage: Any) -> dict:
    counts = {p: 0 for p in PRODUCTS} | usage
    return {
        "id": line_id if line_id is not None else (org_id or 0) + 9000,
        "organization": {"id": org_id, "name": name if name is not None else f"Org {org_id}"},
        "actual_usage": {p: v for p, v in counts.items() if v is not ABSENT},
    }


def usage_of(*lines: dict, products: tuple[str, ...] = PRODUCTS) -> pd.DataFrame:
    return frames.usage_frame(5001, lines, products)


def orgs_of(*rows: tuple) -> pd.DataFrame:
    """(id, name, key[, account_id]) rows; the account is 1 (the reseller's own) unless given."""
    return frames.organizations_frame([{"id": r[0], "name": r[1], "key": r[2], "account_id": (r + (1,))[3]}
                                       for r in rows])


def companies_of(*rows: tuple[int, str | None, str | None]) -> pd.DataFrame:
    return frames.companies_frame([{"id": i, "identifier": ident, "name": n} for i, ident, n in rows])


def addition(
    addition_id: int,
    company_id: int,
    product: str = "edr",
    quantity: Any = 40,
    *,
    agreement_id: int | None = None,
    agreement_name: str = "Managed Security",
    agreement_type: str | None = "Managed Services",
    agreement_status: str | None = "Active",
    agreement_cancelled: bool | None = False,
    effective: str | None = "2025-01-01T00:00:00Z",
    cancelled: str | None = None,
    status: str | None = "Active",
    identifier: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> tuple[dict, dict]:
    """One (agreement, addition) pair in ConnectWise's API shape. `status` is the addition's own
    status, which ConnectWise carries in the addition's `agreementStatus` (it has no additionStatus)."""
    agreement_id = agreement_id or company_id * 10
    agreement = {
        "id": agreement_id,
        "name": agreement_name,
        "type": {"name": agreement_type} if agreement_type is not None else None,
        "company": {"id": company_id},
        "agreementStatus": agreement_status,
        "cancelledFlag": agreement_cancelled,
        "startDate": start,
        "endDate": end,
    }
    record = {
        "id": addition_id,
        "agreementId": agreement_id,
        "product": {"identifier": identifier or CATALOG.get(product, product)},
        "quantity": quantity,
        "effectiveDate": effective,
        "cancelledDate": cancelled,
        "agreementStatus": status,
    }
    return agreement, record


def additions_of(*pairs: tuple[dict, dict]) -> pd.DataFrame:
    agreements = {ag["id"]: ag for ag, _ in pairs}
    return frames.additions_frame(agreements, [a for _, a in pairs])


def org_map_of(*rows: tuple[int, int]) -> pd.DataFrame:
    return frames.conform(pd.DataFrame(rows, columns=["organization_id", "company_id"]), "org_map")


ACME_ORG = (101, "Acme Corp", "acme")
ACME = (250, "acme", "Acme Corp")


def run(
    usage: pd.DataFrame,
    organizations: pd.DataFrame | None = None,
    companies: pd.DataFrame | None = None,
    additions: pd.DataFrame | None = None,
    org_map: pd.DataFrame | None = None,
    settings: Settings | None = None,
    billing_date: date = BILLING,
) -> pd.DataFrame:
    out = rc.reconcile(
        usage,
        organizations if organizations is not None else orgs_of(ACME_ORG),
        companies if companies is not None else companies_of(ACME),
        additions if additions is not None else frames.empty("additions"),
        org_map if org_map is not None else frames.empty("org_map"),
        settings or Settings(),
        billing_date,
    )
    _check_shape(out)
    return out


def _check_shape(out: pd.DataFrame) -> None:
    assert list(out.columns) == list(frames.SCHEMAS["outcomes"])
    assert out.dtypes.astype(str).to_dict() == frames.SCHEMAS["outcomes"]
    assert out["sync_key"].is_unique
    assert out["sync_key"].tolist() == sorted(out["sync_key"])
    assert set(out["outcome"]) <= set(rc.OUTCOMES)
    quarantined = out["outcome"] == "quarantined"
    assert out["reason_code"].notna().eq(quarantined).all()
    assert set(out["reason_code"].dropna()) <= set(rc.REASON_CODES)
    assert out.loc[quarantined, "detail"].notna().all()


def key(out: pd.DataFrame, sync_key: str) -> dict[str, Any]:
    hit = out[out["sync_key"] == sync_key]
    assert len(hit) == 1, f"{sync_key} not in {out['sync_key'].tolist()}"
    return hit.iloc[0].to_dict()


def acme(edr: Any = 40, quantity: Any = 38, settings: Settings | None = None, **more: Any) -> dict[str, Any]:
    """Acme Corp (org 101, key match) with one live EDR addition: the company:250:edr row."""
    out = run(usage_of(line(101, "Acme Corp", edr=edr)), additions=additions_of(addition(501, 250, "edr", quantity)),
              settings=settings, **more)
    return key(out, "company:250:edr")


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
    adds = additions_of(addition(501, 250, "edr", 38, agreement_id=1578), addition(502, 250, "edr", 2, agreement_id=1578))
    assert key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")["reason_code"] == "duplicate_addition"


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
    assert "failed check: quantity below the agreed floor" in row["detail"]
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
    out = run(usage_of(line(102, "Nobody Inc", edr=-1, itdr="7", sat=ABSENT, siem=None)),
              organizations=orgs_of((102, "Nobody Inc", None)))
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
    adds = additions_of(addition(501, 250, "edr", 40), addition(601, 260, "edr", 12, agreement_name="Old Deal"))
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
    adds = additions_of(addition(601, 260, "sat", 12, agreement_id=1), addition(602, 260, "sat", 3, agreement_id=2))
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
    assert list(rc.REASON_CODES)[:9] == [
        "unmapped_organization", "ambiguous_company_match", "no_live_addition", "duplicate_addition",
        "invalid_usage", "change_exceeds_limit", "missing_from_invoice", "changed_since_read", "push_rejected",
    ]
    assert "invalid_addition" in rc.REASON_CODES
    assert set(rc.REASON_HELP) == set(rc.REASON_CODES) and all(rc.REASON_HELP.values())


# --------------------------------------------------------------------------------------------
# Several organizations → one company


def _two_orgs(edr_b: Any) -> pd.DataFrame:
    orgs = orgs_of((101, "Acme Corp", "acme"), (102, "Acme Branch", None))
    adds = additions_of(addition(501, 250, "edr", 40))
    return run(usage_of(line(101, edr=30), line(102, "Acme Branch", edr=edr_b)), orgs,
               additions=adds, org_map=org_map_of((102, 250)))


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
# Absent or null counts (CONTRACTS §2): 0 without a live addition, invalid_usage with one


@pytest.mark.parametrize("missing", [ABSENT, None], ids=["absent", "null"])
def test_absent_or_null_product_without_live_addition_is_zero(missing: Any) -> None:
    out = run(usage_of(line(101, "Acme Corp", edr=40, sat=missing)), additions=additions_of(addition(501, 250, "edr", 40)))
    row = key(out, "company:250:sat")
    assert (row["outcome"], row["huntress_quantity"]) == ("not_applicable", 0) and pd.isna(row["reason_code"])
    assert key(out, "company:250:edr")["outcome"] == "unchanged"


@pytest.mark.parametrize(("missing", "said"), [(ABSENT, "sat = absent: absent from the invoice line"),
                                               (None, "sat = null: null on the invoice line")], ids=["absent", "null"])
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
    adds = additions_of(addition(501, 250, "sat", 30, agreement_id=1), addition(502, 250, "sat", 2, agreement_id=2))
    row = key(run(usage_of(line(101, sat=ABSENT)), additions=adds), "company:250:sat")
    assert row["reason_code"] == "invalid_usage" and "501" in row["detail"] and "502" in row["detail"]


def test_one_of_several_organizations_without_the_count_holds_a_company_with_a_live_addition() -> None:
    out = _two_orgs(ABSENT)
    row = key(out, "company:250:edr")
    assert (row["reason_code"], row["organization_ids"]) == ("invalid_usage", "101,102")
    assert pd.isna(row["huntress_quantity"]) and row["previous_quantity"] == 40
    assert row["detail"].startswith("organization 102 'Acme Branch', edr = absent: absent from the invoice line (")


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
# Matching rules


def match(orgs: pd.DataFrame, comps: pd.DataFrame, org_map: pd.DataFrame | None = None) -> dict[int, dict]:
    result = rc.match_organizations(orgs, comps, org_map if org_map is not None else frames.empty("org_map"))
    assert list(result.columns) == ["organization_id", "company_id", "match_rule", "status",
                                    "candidate_company_ids", "detail"]
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
    assert (m[1]["company_id"], m[1]["match_rule"], m[1]["status"]) == (10, "key", "matched")  # key beats name


def test_key_match_is_case_insensitive() -> None:
    m = match(orgs_of((1, "Whatever", " AcMe ")), companies_of((10, "ACME", "Other")))
    assert (m[1]["company_id"], m[1]["match_rule"]) == (10, "key") and pd.isna(m[1]["detail"])


def test_ambiguous_at_key_level_even_if_name_is_unique() -> None:
    comps = companies_of((10, "acme", "Acme Corp"), (11, "ACME", "Other"))
    m = match(orgs_of((1, "Acme Corp", "acme")), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == ("ambiguous", "key", "10,11")
    assert pd.isna(m[1]["company_id"])


def test_ambiguous_at_name_level() -> None:
    comps = companies_of((12, "a", "Acme Corp."), (11, "b", "ACME  corp"), (13, "c", "Acme Corp Ltd"))
    m = match(orgs_of((1, "Acme Corp", None)), comps)
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == ("ambiguous", "name", "11,12")
    assert "match companies 11,12" in m[1]["detail"]


def test_org_map_to_a_missing_company_is_unmapped() -> None:
    m = match(orgs_of((1, "Acme Corp", "acme")), companies_of((10, "acme", "Acme Corp")), org_map_of((1, 99)))
    assert (m[1]["status"], m[1]["match_rule"]) == ("unmapped", "org_map") and pd.isna(m[1]["company_id"])
    assert "company 99" in m[1]["detail"] and "not in ConnectWise" in m[1]["detail"]


def test_org_map_with_two_companies_is_ambiguous() -> None:
    comps = companies_of((10, "a", "A"), (11, "b", "B"))
    m = match(orgs_of((1, "A", "a")), comps, org_map_of((1, 11), (1, 10), (1, 10)))
    assert (m[1]["status"], m[1]["match_rule"], m[1]["candidate_company_ids"]) == ("ambiguous", "org_map", "10,11")


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
    assert (m[1]["status"], m[1]["match_rule"], m[1]["company_id"]) == ("matched", "name", 10)  # the name decides
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
    assert (row["match_rule"], row["organization_ids"], row["organization_names"]) == ("name", "777", "Acme Corp")


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


@pytest.mark.parametrize(("a", "b"), [("Acme Corp", "Acme Corporation"), ("Café", "Cafe"), ("Acme 1", "Acme 2"), ("Acme-Corp", "Acme Corp")])
def test_normalize_name_keeps_distinct_names_distinct(a: str, b: str) -> None:
    assert rc.normalize_name(a) != rc.normalize_name(b)


def test_normalize_names_series() -> None:
    s = pd.Series(["ACME, Inc.", None, "!!!", "acme inc"], index=[5, 6, 7, 8], dtype="string")
    out = rc.normalize_names(s)
    assert out.dtype == "string" and list(out.index) == [5, 6, 7, 8]
    assert out.tolist() == ["acme inc", pd.NA, pd.NA, "acme inc"]
    assert rc.normalize_names(pd.Series([], dtype="string")).empty


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
    assert acme(edr=0, quantity=5)["detail"] == "edr 5 → 0 (−5, −100.0%) drop from 5 to 0 needs allow_drop_to_zero"
    assert acme(edr=0, quantity=40)["detail"] == (
        "edr 40 → 0 (−40, −100.0%) exceeds max_change_units=10 and max_change_ratio=0.5; "
        "drop from 40 to 0 needs allow_drop_to_zero"
    )
    assert acme(edr=11, quantity=0)["detail"] == "edr 0 → 11 (+11) exceeds max_change_units=10 and max_change_ratio=0.5"


def test_guard_uses_settings() -> None:
    loose = Settings(max_change_units=100, max_change_ratio=0.0)
    assert acme(edr=5, quantity=40, settings=loose)["outcome"] == "change"
    strict = Settings(max_change_units=0, max_change_ratio=0.0)
    assert acme(edr=39, quantity=40, settings=strict)["reason_code"] == "change_exceeds_limit"


# --------------------------------------------------------------------------------------------
# Live additions


LIVE_CASES = [
    ({}, True),
    ({"agreement_cancelled": True}, False),
    ({"agreement_cancelled": None}, False),  # flag absent: state unknown, never billed on
    ({"agreement_status": "Expired"}, False),
    ({"agreement_status": "Cancelled"}, False),
    ({"agreement_status": None}, False),
    ({"status": "Cancelled"}, False),
    ({"status": "Inactive"}, False),
    ({"status": None}, True),  # the addition's agreementStatus absent: the dates decide
    ({"status": "Expired"}, False),
    ({"cancelled": "2026-10-15T00:00:00Z"}, False),  # cancelled in the past
    ({"cancelled": "2026-11-01T00:00:00Z"}, False),  # cancelled on the billing date
    ({"cancelled": "2026-11-01T23:59:00Z"}, False),
    ({"cancelled": "2026-11-02T00:00:00Z"}, True),  # cancelled in the future
    ({"cancelled": "2026-12-31T00:00:00Z"}, True),
    ({"effective": "2026-11-02T00:00:00Z"}, False),  # effective after the billing date
    ({"effective": "2026-11-01T00:00:00Z"}, True),  # effective on the billing date
    ({"effective": "2026-11-01T18:30:00Z"}, True),  # later that day (UTC) still counts
    ({"effective": "2026-11-01T20:00:00-05:00"}, False),  # = 2026-11-02T01:00Z
    # effectiveDate is optional: without it the addition bills from its agreement's start.
    ({"effective": None}, True),  # no start date either: started (CONTRACTS §2, "empty")
    ({"effective": None, "start": "2024-06-01T00:00:00Z"}, True),
    ({"effective": None, "start": "2026-11-01T23:00:00Z"}, True),  # starts on the billing date
    ({"effective": None, "start": "2026-11-02T00:00:00Z"}, False),  # starts after it
    ({"effective": "2026-10-01T00:00:00Z", "start": "2026-12-01T00:00:00Z"}, True),  # effectiveDate decides
    # An agreement that ended before the billing date is not live; ending on it still is.
    ({"end": "2026-10-31T00:00:00Z"}, False),
    ({"end": "2026-10-31T23:59:59Z"}, False),
    ({"end": "2026-11-01T00:00:00Z"}, True),
    ({"end": "2027-12-31T00:00:00Z"}, True),
]


@pytest.mark.parametrize(("changes", "live"), LIVE_CASES)
def test_live_additions(changes: dict, live: bool) -> None:
    adds = additions_of(addition(501, 250, **changes))
    assert len(rc.live_additions(adds, BILLING, ())) == int(live)


def test_no_live_addition_detail_names_end_start_and_addition_status() -> None:
    adds = additions_of(
        addition(501, 250, "edr", 38, agreement_id=1, end="2026-09-30T00:00:00Z"),
        addition(502, 250, "edr", 2, agreement_id=2, effective=None, start="2026-12-01T00:00:00Z"),
        addition(503, 250, "edr", 5, agreement_id=3, status="Inactive"),
    )
    detail = key(run(usage_of(line(101, edr=7)), additions=adds), "company:250:edr")["detail"]
    assert "(agreement ended 2026-09-30)" in detail
    assert "(no effective date, agreement starts 2026-12-01)" in detail
    assert "(addition status Inactive)" in detail


def test_addition_without_effective_date_is_live_and_synced() -> None:
    adds = additions_of(addition(501, 250, "edr", 38, effective=None, start="2025-01-01T00:00:00Z"))
    row = key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")
    assert (row["outcome"], row["addition_id"], row["new_quantity"]) == ("change", 501, 40)


def test_live_additions_agreement_types() -> None:
    adds = additions_of(
        addition(501, 250, agreement_type="Managed Services", agreement_id=1),
        addition(502, 250, agreement_type="Block Time", agreement_id=2),
        addition(503, 250, agreement_type=None, agreement_id=3),
    )
    assert rc.live_additions(adds, BILLING, [])["addition_id"].tolist() == [501, 502, 503]
    assert rc.live_additions(adds, BILLING, ["managed services "])["addition_id"].tolist() == [501]
    assert rc.live_additions(adds, BILLING, ["Block Time", "Managed Services"])["addition_id"].tolist() == [501, 502]


def test_live_additions_accepts_an_airflow_datetime() -> None:
    adds = additions_of(addition(501, 250, effective="2026-11-01T12:00:00Z"))
    assert len(rc.live_additions(adds, datetime(2026, 11, 1, 0, 0, tzinfo=UTC), ())) == 1
    assert len(rc.live_additions(adds, datetime(2026, 10, 31, 23, 0, tzinfo=UTC), ())) == 0


def test_disallowed_agreement_type_means_no_live_addition() -> None:
    settings = Settings(agreement_types=("Block Time",))
    row = acme(edr=40, quantity=38, settings=settings)
    assert row["reason_code"] == "no_live_addition"
    assert "agreement type 'Managed Services' not in agreement_types" in row["detail"]


def test_cancelled_addition_next_to_a_live_one_is_ignored() -> None:
    adds = additions_of(
        addition(500, 250, "edr", 10, agreement_id=1, cancelled="2026-03-01T00:00:00Z"),
        addition(501, 250, "edr", 38, agreement_id=2),
    )
    row = key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")
    assert (row["outcome"], row["addition_id"]) == ("change", 501)


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
    assert key(run(usage_of(line(101, edr=40)), additions=adds), "company:250:edr")["reason_code"] == "no_live_addition"


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
    usage.loc[usage["product"] == "edr", "issue"] = "expect_column_values_to_be_between(quantity, 0, 10000)"
    out = run(usage, additions=additions_of(addition(501, 250, "edr", 38)))
    row = key(out, "company:250:edr")
    assert row["reason_code"] == "invalid_usage"
    assert row["detail"] == (
        "organization 101 'Acme Corp', edr = 40: failed check: expect_column_values_to_be_between(quantity, 0, 10000)"
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
        frames.empty("usage"), frames.empty("organizations"), frames.empty("companies"),
        frames.empty("additions"), frames.empty("org_map"), Settings(), BILLING,
    )
    _check_shape(out)
    assert out.empty and rc.summarize(out)["total"] == 0


# --------------------------------------------------------------------------------------------
# summarize


def test_summarize_has_every_outcome_and_reason() -> None:
    out = run(usage_of(line(101, edr=40), line(102, "Nobody", edr=1)), additions=additions_of(addition(501, 250)))
    counts = rc.summarize(out)
    assert set(counts) == {*rc.OUTCOMES, *rc.PUSH_OUTCOMES, *rc.REASON_CODES, "total"}
    assert counts["total"] == len(out) == 8
    assert counts["unchanged"] == 1 and counts["unmapped_organization"] == 1 and counts["push_rejected"] == 0
    assert sum(counts[o] for o in (*rc.OUTCOMES, *rc.PUSH_OUTCOMES)) == counts["total"]
    assert sum(counts[c] for c in rc.REASON_CODES) == counts["quarantined"]
    after_push = out.assign(outcome=out["outcome"].replace({"unchanged": "updated"}))
    assert rc.summarize(after_push)["updated"] == 1


# --------------------------------------------------------------------------------------------
# Property: every usage row is accounted for by exactly one key; numbers add up; a naive
# per-row reference implementation of the rules agrees on every key.

VALUES = [0, 0, 1, 3, 12, 40, 55]
BAD_VALUES = [-1, 2.5, "7", None, ABSENT]
QUANTITIES = [0, 1, 3, 12, 38, 40, 52, 55] * 3 + [2.5, -2, None]
NAMES = ["Acme Corp", "ACME corp.", "Beta", "Gamma LLC", "gamma, llc", "Delta", None, "..."]
IDENTS = ["acme", "ACME", "beta", "gamma", "delta", None, ""]
DATES = [None, "2025-01-01T00:00:00Z", "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-10-01T00:00:00Z"]


def _random_case(rnd: random.Random) -> dict[str, Any]:
    org_ids = rnd.sample(range(1, 40), rnd.randint(0, 12))
    company_ids = rnd.sample(range(100, 130), rnd.randint(0, 8))
    # Half the organizations carry a key equal to a company's unique identifier; the rest draw from
    # small pools of keys and names, so ambiguity and near-miss names are common.
    def org_key() -> str | None:
        return f"c{rnd.choice(company_ids)}" if company_ids and rnd.random() < 0.5 else rnd.choice(IDENTS)

    # Mostly the own account; some managed ones (keys are unique only per account), rarely unknown.
    orgs = [{"id": o, "name": rnd.choice(NAMES), "key": org_key(), "account_id": rnd.choice([1, 1, 1, 1, 2, 3, None])}
            for o in org_ids if rnd.random() < 0.9]
    comps = [{"id": c, "identifier": f"C{c}" if rnd.random() < 0.7 else rnd.choice(IDENTS), "name": rnd.choice(NAMES)}
             for c in company_ids]
    org_map = [(o, rnd.choice(company_ids + [999])) for o in org_ids if rnd.random() < 0.15 and company_ids]
    lines = []
    for i, o in enumerate(org_ids + rnd.sample(org_ids, min(len(org_ids), rnd.randint(0, 2))) + [None] * rnd.randint(0, 1)):
        counts = {p: rnd.choice(BAD_VALUES if rnd.random() < 0.08 else VALUES) for p in PRODUCTS}
        lines.append(line(o, rnd.choice(NAMES), line_id=i + 1, **counts))
    rnd.shuffle(lines)
    pairs = []
    for n in range(rnd.randint(0, 25)):
        pairs.append(addition(
            1000 + n, rnd.choice(company_ids or [100]), rnd.choice(PRODUCTS + ("other",)), rnd.choice(QUANTITIES),
            agreement_id=rnd.randint(1, 12),  # shared ids: the last agreement record wins, as in frames
            agreement_type=rnd.choice(["Managed Services", "Block Time", None]),
            agreement_status=rnd.choice(["Active"] * 8 + ["Expired", None]),
            agreement_cancelled=rnd.choice([False] * 8 + [True, None]),
            effective=rnd.choice(DATES[1:] * 3 + [None]),
            cancelled=rnd.choice([None] * 8 + DATES[1:]),
            status=rnd.choice(["Active"] * 8 + ["Cancelled", None]),
            start=rnd.choice(DATES),
            end=rnd.choice([None] * 6 + DATES[1:]),
        ))
    # Well-kept customers: unique key match, one live addition per product near the usage.
    for j in range(rnd.randint(0, 6)):
        org_id, company_id = 200 + j, 300 + j
        orgs.append({"id": org_id, "name": f"Clean {j}", "key": f"clean{j}"})
        comps.append({"id": company_id, "identifier": f"CLEAN{j}", "name": f"Clean {j}"})
        counts = {p: rnd.choice(VALUES) for p in PRODUCTS}
        lines.append(line(org_id, f"Clean {j}", line_id=100 + j, **counts))
        for k, (p, v) in enumerate(counts.items()):
            drift = rnd.choice([0, 0, 0, 1, -1, 5, 11, 30])
            pairs.append(addition(5000 + 10 * j + k, company_id, p, max(v + drift, 0), agreement_id=company_id))
    products = dict(rnd.sample(sorted(CATALOG.items()), rnd.randint(1, 4)))
    settings = Settings(
        products=products, max_change_units=rnd.choice([0, 5, 10]), max_change_ratio=rnd.choice([0.0, 0.5, 1.0]),
        allow_drop_to_zero=rnd.random() < 0.5,
        agreement_types=rnd.choice([(), (), (), ("managed services",), ("Block Time",)]),
    )
    usage = usage_of(*lines)
    if rnd.random() < 0.3:
        usage["issue"] = pd.array([rnd.choice([None] * 19 + ["expect_x"]) for _ in range(len(usage))], dtype="string")
    return {
        "usage": usage, "organizations": frames.organizations_frame(orgs), "companies": frames.companies_frame(comps),
        "additions": additions_of(*pairs), "org_map": org_map_of(*org_map), "settings": settings,
        "billing_date": BILLING,
    }


@pytest.mark.parametrize("seed", range(150))
def test_every_usage_row_has_exactly_one_outcome(seed: int) -> None:
    case = _random_case(random.Random(seed))
    before = {k: v.copy() for k, v in case.items() if isinstance(v, pd.DataFrame)}
    out = rc.reconcile(**case)
    _check_shape(out)
    for name, frame in before.items():  # pure: the inputs are left as they were
        pd.testing.assert_frame_equal(case[name], frame)
    products = case["settings"].products
    usage = case["usage"][case["usage"]["product"].isin(products)]
    ids = {k: set(v.split(",")) for k, v in zip(out["sync_key"], out["organization_ids"].fillna(""), strict=True)}
    fed: dict[str, list[dict]] = {}
    for r in usage.to_dict("records"):
        if pd.isna(r["organization_id"]):
            owners = [f"line:{r['line_id']}:{r['product']}"]
        else:
            owners = [k for k, v in ids.items() if k.endswith(":" + r["product"]) and str(r["organization_id"]) in v]
        assert len(owners) == 1, (r, owners)
        assert owners[0] in ids
        fed.setdefault(owners[0], []).append(r)
    for r in out.to_dict("records"):
        rows = fed.get(r["sync_key"], [])
        if not rows:  # only companies with live additions and no usage row get keys of their own
            assert r["reason_code"] in ("missing_from_invoice", "invalid_usage") and r["sync_key"].startswith("company:")
            continue
        if not pd.isna(r["huntress_quantity"]):  # absent or null counts add nothing
            assert r["huntress_quantity"] == sum(x["quantity"] for x in rows if not pd.isna(x["quantity"]))
    expected = _naive_reconcile(case)
    got = {r["sync_key"]: (r["outcome"], _na(r["reason_code"]), _na(r["huntress_quantity"]),
                           _na(r["previous_quantity"]), _na(r["new_quantity"])) for r in out.to_dict("records")}
    assert got == expected


def _na(v: Any) -> Any:
    return None if pd.isna(v) else v


def _naive_reconcile(case: dict[str, Any]) -> dict[str, tuple]:
    """The rules of CONTRACTS.md §2–3 written the slow, obvious way, row by row."""
    s: Settings = case["settings"]
    usage = [r for r in case["usage"].to_dict("records") if r["product"] in s.products]
    orgs: dict[int, dict] = {}
    for o in case["organizations"].to_dict("records"):
        orgs.setdefault(o["organization_id"], o)
    comps = {c["company_id"]: c for c in case["companies"].to_dict("records")}
    org_map = [(m["organization_id"], m["company_id"]) for m in case["org_map"].to_dict("records")]
    live = [a for a in case["additions"].to_dict("records") if _naive_live(a, s)]

    def fold(v: Any) -> str | None:
        return None if pd.isna(v) or not str(v).strip() else str(v).strip().casefold()

    def norm(v: Any) -> str | None:
        return None if pd.isna(v) else (rc.normalize_name(v) or None)

    # A key carried by organizations of two accounts (or of an unknown one) is no key match.
    holders: dict[str, dict[int, Any]] = {}
    for o in case["organizations"].to_dict("records"):
        if fold(o["key"]) and not pd.isna(o["organization_id"]):
            holders.setdefault(fold(o["key"]), {})[o["organization_id"]] = _na(o["account_id"])

    def key_of(o: dict) -> str | None:
        held = holders.get(fold(o["key"]) or "", {})
        accounts = set(held.values())
        return None if len(held) > 1 and (len(accounts) > 1 or None in accounts) else fold(o["key"])

    line_names: dict[int, Any] = {}  # an organization's first named line stands in for a missing name
    for r in usage:
        if pd.isna(line_names.get(r["organization_id"], pd.NA)):
            line_names[r["organization_id"]] = r["organization_name"]

    def company_of(org_id: int) -> tuple[str, int | None]:
        o = orgs.get(org_id, {"name": pd.NA, "key": None})
        name = line_names[org_id] if pd.isna(o["name"]) else o["name"]
        for candidates in (
            {c for m, c in org_map if m == org_id},
            {c for c, x in comps.items() if key_of(o) and fold(x["identifier"]) == key_of(o)},
            {c for c, x in comps.items() if norm(name) and norm(x["name"]) == norm(name)},
        ):
            if len(candidates) > 1:
                return "ambiguous", None
            if len(candidates) == 1:
                c = candidates.pop()
                return ("matched", c) if c in comps else ("unmapped", None)
        return "unmapped", None

    copies: dict[tuple, int] = {}
    for r in usage:
        copies[(r["organization_id"], r["product"])] = copies.get((r["organization_id"], r["product"]), 0) + 1
    groups: dict[str, list] = {}
    status: dict[str, str] = {}
    on_invoice: set[int] = set()
    for r in usage:
        absent = pd.isna(r["raw_quantity"]) or r["raw_quantity"] == "null"  # 0 unless a live addition
        invalid = (pd.isna(r["organization_id"]) or copies[(r["organization_id"], r["product"])] > 1
                   or (pd.isna(r["quantity"]) and not absent) or not pd.isna(r.get("issue", pd.NA)))
        if pd.isna(r["organization_id"]):
            k, st = f"line:{r['line_id']}:{r['product']}", "line"
        else:
            st, c = company_of(r["organization_id"])
            k = f"company:{c}:{r['product']}" if st == "matched" else f"organization:{r['organization_id']}:{r['product']}"
            if c is not None:
                on_invoice.add(c)
        groups.setdefault(k, []).append((invalid, absent, r["quantity"]))
        status[k] = st
    catalog = {v: p for p, v in s.products.items()}
    by_pair: dict[tuple, list] = {}
    for a in live:
        if a["product_identifier"] in catalog and not pd.isna(a["company_id"]):
            by_pair.setdefault((a["company_id"], catalog[a["product_identifier"]]), []).append(a)
    result = {}
    for k, rows in groups.items():
        valid = not any(inv for inv, _, _ in rows)
        if status[k] == "matched":
            _, c, p = k.split(":")
            valid = valid and not (any(a for _, a, _ in rows) and by_pair.get((int(c), p)))
        total = sum(q for _, a, q in rows if not a) if valid else None
        if status[k] == "line":
            result[k] = ("quarantined", "invalid_usage", None, None, None)
        elif status[k] != "matched":
            if valid and total == 0:
                result[k] = ("not_applicable", None, 0, None, None)
            else:
                code = "ambiguous_company_match" if status[k] == "ambiguous" else "unmapped_organization"
                result[k] = ("quarantined", code, total, None, None)
        else:
            _, c, p = k.split(":")
            result[k] = _naive_company(by_pair.get((int(c), p), []), valid, total, s)
    for (c, p), adds in by_pair.items():
        k = f"company:{c}:{p}"
        if k not in result:
            prev = adds[0]["quantity"] if len(adds) == 1 else None
            code = "invalid_usage" if c in on_invoice else "missing_from_invoice"
            result[k] = ("quarantined", code, None, _na(prev), None)
    return result


def _naive_company(adds: list[dict], valid: bool, total: int | None, s: Settings) -> tuple:
    prev = _na(adds[0]["quantity"]) if len(adds) == 1 else None
    if not valid:
        return ("quarantined", "invalid_usage", None, prev, None)
    if not adds:
        return ("not_applicable", None, 0, None, None) if total == 0 else ("quarantined", "no_live_addition", total, None, None)
    if len(adds) > 1:
        return ("quarantined", "duplicate_addition", total, None, None)
    if prev is None or prev < 0 or prev != int(prev):
        return ("quarantined", "invalid_addition", total, prev, None)
    if total == prev:
        return ("unchanged", None, total, prev, total)
    diff = abs(total - prev)
    if (diff > s.max_change_units and diff > s.max_change_ratio * prev) or (
        total == 0 and prev > 0 and not s.allow_drop_to_zero
    ):
        return ("quarantined", "change_exceeds_limit", total, prev, None)
    return ("change", None, total, prev, total)


def _naive_live(a: dict, s: Settings) -> bool:
    day = pd.Timestamp("2026-11-01", tz="UTC")
    types = {t.strip().casefold() for t in s.agreement_types}
    starts = a["agreement_start_date"] if pd.isna(a["effective_date"]) else a["effective_date"]
    return (
        a["agreement_cancelled"] is False
        and a["agreement_status"] == "Active"
        and (pd.isna(a["agreement_end_date"]) or a["agreement_end_date"].date() >= day.date())
        and (not types or (not pd.isna(a["agreement_type"]) and a["agreement_type"].strip().casefold() in types))
        and (pd.isna(a["addition_status"]) or a["addition_status"] == "Active")
        and (pd.isna(a["cancelled_date"]) or a["cancelled_date"].date() > day.date())
        and (pd.isna(starts) or starts.date() <= day.date())
    )


# --------------------------------------------------------------------------------------------
# Scale: 100,000 usage rows against 100,000 additions


def _big_case(n_orgs: int = 25_000, seed: int = 7) -> dict[str, Any]:
    """25k organizations × 4 products; 25k companies each with one live addition per product.

    About 30 % match by name, 2 % match nothing (their companies become missing_from_invoice),
    1 % of counts are invalid, half the quantities drift by up to 3 units.
    """
    rng = np.random.default_rng(seed)
    org_ids = np.arange(1, n_orgs + 1)
    comp_ids = org_ids + 100_000
    by_name = rng.random(n_orgs) < 0.3
    unmapped = rng.random(n_orgs) < 0.02
    org_names = np.array([f"Org {i} Ltd." for i in org_ids], dtype=object)
    organizations = pd.DataFrame({"organization_id": org_ids, "name": org_names, "key": [f"org{i}" for i in org_ids]})
    companies = pd.DataFrame({
        "company_id": comp_ids,
        "identifier": np.where(by_name | unmapped, [f"x{i}" for i in org_ids], [f"ORG{i}" for i in org_ids]),
        "name": np.where(unmapped, [f"Other {i}" for i in org_ids], [f"ORG {i} LTD" for i in org_ids]),
    })
    qty = rng.integers(0, 200, size=(n_orgs, 4))
    bad = rng.random((n_orgs, 4)) < 0.01
    usage = pd.DataFrame({
        "invoice_id": 5001,
        "line_id": np.repeat(org_ids, 4),
        "organization_id": np.repeat(org_ids, 4),
        "organization_name": np.repeat(org_names, 4),
        "product": np.tile(PRODUCTS, n_orgs),
        "raw_quantity": np.where(bad, "-1", qty.astype(str)).ravel(),
        "quantity": pd.array(np.where(bad, None, qty).ravel(), dtype="Int64"),
    })
    drift = rng.integers(-3, 4, size=qty.shape) * (rng.random(qty.shape) < 0.5)
    additions = pd.DataFrame({
        "addition_id": np.arange(1, 4 * n_orgs + 1),
        "agreement_id": np.repeat(comp_ids + 500_000, 4),
        "company_id": np.repeat(comp_ids, 4),
        "agreement_name": "Managed Security",
        "agreement_type": "Managed Services",
        "agreement_status": "Active",
        "agreement_cancelled": False,
        "product_identifier": np.tile([CATALOG[p] for p in PRODUCTS], n_orgs),
        "quantity": np.clip(qty + drift, 0, None).ravel().astype(float),
        "effective_date": "2025-01-01T00:00:00Z",
        "cancelled_date": None,
        "addition_status": "Active",
    })
    return {
        "usage": frames.conform(usage, "usage"),
        "organizations": frames.conform(organizations, "organizations"),
        "companies": frames.conform(companies, "companies"),
        "additions": frames.conform(additions, "additions"),
        "org_map": frames.empty("org_map"),
        "settings": Settings(),
        "billing_date": BILLING,
    }


def test_100k_usage_rows_against_100k_additions() -> None:
    """Correctness at scale; its time and memory are measured by `make bench` (reconcile_scale),
    not asserted here: no test depends on the machine's speed."""
    case = _big_case()
    assert len(case["usage"]) == len(case["additions"]) == 100_000
    out = rc.reconcile(**case)
    counts = rc.summarize(out)
    assert counts["total"] == len(out) > 100_000
    assert counts["change"] > 30_000 and counts["unchanged"] > 30_000
    assert counts["missing_from_invoice"] > 0 and counts["unmapped_organization"] > 0 and counts["invalid_usage"] > 0
    assert out["sync_key"].is_unique
