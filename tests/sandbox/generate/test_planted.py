"""Generator: every planted problem is real, and nothing else is a problem."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from billing_sandbox import generate as gen
from tests.sandbox.generate import (
    CHECKED_CODES,
    PRODUCTS,
    _day,
    _fold_with,
    planted_keys,
    problem_keys,
    reconcile,
)

# --------------------------------------------------------------------------------------------
# Every planted problem is real, and nothing else is a problem


def test_every_reason_code_is_planted_at_40(demo_like: dict, demo_result: dict) -> None:
    found = Counter(code for code, *_ in problem_keys(demo_result))
    assert set(found) == CHECKED_CODES, found
    assert problem_keys(demo_result) == planted_keys(demo_like)
    for code, entries in demo_like["meta"]["planted"].items():
        variants = {e["variant"] for e in entries}
        assert set(gen.PROBLEMS[code][1]) <= variants, (code, variants)


@pytest.mark.parametrize("seed", [1, 7])
@pytest.mark.parametrize("n", [5, 25, 120])
def test_meta_is_exact_for_other_sizes(n: int, seed: int) -> None:
    scenario = gen.generate(n, seed)
    result = reconcile(scenario)
    assert problem_keys(result) == planted_keys(scenario)
    assert len(scenario["huntress"]["organizations"]) == n
    keys = Counter(code for code in result["outcomes"].values())
    assert keys["changed"] == scenario["meta"]["counts"]["clean_keys"]["changed"]
    assert keys["unchanged"] == scenario["meta"]["counts"]["clean_keys"]["unchanged"]


def test_ten_organizations_get_every_code() -> None:
    scenario = gen.generate(10, 4)
    assert {code for code, *_ in problem_keys(reconcile(scenario))} == CHECKED_CODES


def test_matching_does_not_depend_on_how_punctuation_folds(demo_like: dict) -> None:
    assert (
        reconcile(demo_like, _fold_with(""))["outcomes"] == reconcile(demo_like, _fold_with(" "))["outcomes"]
    )


def test_clean_scenario_has_no_problems() -> None:
    scenario = gen.generate(60, 9, clean=True)
    result = reconcile(scenario)
    assert not problem_keys(result)
    assert all(not v for v in scenario["meta"]["planted"].values())
    assert set(result["outcomes"].values()) <= {"changed", "unchanged", "not_applicable"}


def test_planted_unmapped_and_ambiguous_orgs(demo_like: dict, demo_result: dict) -> None:
    companies = {c["id"]: c for c in demo_like["connectwise"]["companies"]}
    orgs = {o["id"]: o for o in demo_like["huntress"]["organizations"]}
    fold = _fold_with("")
    for e in demo_like["meta"]["planted"]["unmapped_organization"]:
        org = orgs[e["organization_id"]]
        for c in companies.values():
            if not c.get("deletedFlag"):
                assert c["identifier"].casefold() != org["key"].casefold()
                assert fold(c["name"]) != fold(org["name"])
        if e["variant"] == "deleted_company_only":
            gone = companies[e["deleted_company_id"]]
            assert gone["deletedFlag"] is True and gone["identifier"].casefold() == org["key"]
    (amb,) = demo_like["meta"]["planted"]["ambiguous_company_match"]
    org = orgs[amb["organization_id"]]
    assert all(fold(companies[c]["name"]) == fold(org["name"]) for c in amb["company_ids"])
    assert demo_result["matches"][org["id"]] == ("ambiguous", sorted(amb["company_ids"]))


def _why_not_live(scenario: dict, company_id: int, identifier: str) -> set[str]:
    billing = date.fromisoformat(scenario["meta"]["billing_date"])
    catalog = {c["id"]: c["identifier"] for c in scenario["connectwise"]["catalog"]}
    why = set()
    for ag in scenario["connectwise"]["agreements"]:
        for a in ag["additions"]:
            if ag["company_id"] != company_id or catalog[a["product_id"]] != identifier:
                continue
            if ag["cancelledFlag"]:
                why.add("cancelled_agreement")
            elif ag["agreementStatus"] == "Expired":
                why.add("expired_agreement")
            elif a["cancelledDate"] and _day(a["cancelledDate"]) <= billing:
                why.add("cancelled_addition")
            elif _day(a["effectiveDate"]) > billing:
                why.add("future_effective")
    return why or {"no_addition"}


def test_no_live_variants_are_what_they_say(demo_like: dict) -> None:
    for e in demo_like["meta"]["planted"]["no_live_addition"]:
        why = _why_not_live(demo_like, e["company_id"], PRODUCTS[e["product"]])
        assert e["variant"] in why, (e, why)


def test_invalid_usage_values_vary(demo_like: dict) -> None:
    newest = max(demo_like["huntress"]["invoices"], key=lambda i: i["created_at"])
    kinds = set()
    for line in newest["lines"]:
        for p in PRODUCTS:
            if p not in line["actual_usage"]:
                kinds.add("missing")
                continue
            v = line["actual_usage"][p]
            if v is None:
                kinds.add("null")
            elif isinstance(v, str):
                kinds.add("string")
            elif isinstance(v, float):
                kinds.add("fractional")
            elif v < 0:
                kinds.add("negative")
            elif v > 10**9:
                kinds.add("huge")
    assert kinds == {"missing", "null", "string", "fractional", "negative", "huge"}


def test_change_guard_cases(demo_like: dict) -> None:
    variants = {e["variant"]: e for e in demo_like["meta"]["planted"]["change_exceeds_limit"]}
    assert variants["drop_to_zero"]["usage"] == 0 and 0 < variants["drop_to_zero"]["previous_quantity"] <= 10
    assert variants["from_zero"]["previous_quantity"] == 0
    assert variants["big_drop"]["usage"] < variants["big_drop"]["previous_quantity"]
    assert variants["jump_up"]["usage"] > variants["jump_up"]["previous_quantity"]


def test_missing_from_invoice_variants(demo_like: dict) -> None:
    newest = max(demo_like["huntress"]["invoices"], key=lambda i: i["created_at"])
    on_invoice = {line["organization_id"] for line in newest["lines"]}
    older = {
        line["organization_id"] for inv in demo_like["huntress"]["invoices"][:-1] for line in inv["lines"]
    }
    orgs = {o["id"] for o in demo_like["huntress"]["organizations"]}
    by_variant = {e["variant"]: e for e in demo_like["meta"]["planted"]["missing_from_invoice"]}
    churned = by_variant["churned_organization"]["organization_id"]
    assert churned in orgs and churned in older and churned not in on_invoice
    assert "organization_id" not in by_variant["no_organization"]
