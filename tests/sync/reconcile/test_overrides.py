"""reconcile/overrides.py: standing overrides set the quantity a key aims for, before the guard
(docs/contract.md §3, §4 billing_overrides)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from billing_sync import frames
from billing_sync import reconcile as rc
from billing_sync.config import Settings
from tests.helpers.overrides_frame import overrides_of
from tests.sync.reconcile import (
    ABSENT,
    ACME,
    ACME_ORG,
    BILLING,
    addition,
    additions_of,
    check_shape,
    companies_of,
    key,
    line,
    orgs_of,
    usage_of,
)


def with_override(
    *rules: tuple[Any, ...], edr: Any = 40, quantity: Any = 38, settings: Settings | None = None, **more: Any
) -> pd.DataFrame:
    """Acme (org 101 → company 250) with one live EDR addition, under `rules`."""
    out = rc.reconcile(
        more.get("usage", usage_of(line(101, "Acme Corp", edr=edr))),
        orgs_of(ACME_ORG),
        companies_of(ACME),
        more.get("additions", additions_of(addition(501, 250, "edr", quantity))),
        frames.empty("org_map"),
        settings or Settings(),
        BILLING,
        overrides=overrides_of(*rules),
    )
    check_shape(out)
    return out


def edr(out: pd.DataFrame) -> dict[str, Any]:
    return key(out, "company:250:edr")


def test_minimum_raises_the_quantity_and_says_whose_it_is() -> None:
    row = edr(with_override((7, 250, "edr", "minimum", 45), edr=40, quantity=40))
    assert (row["outcome"], row["huntress_quantity"], row["new_quantity"]) == ("change", 40, 45)
    assert row["override_id"] == 7 and row["override"] == "minimum 45 by Jane Doe (override 7)"
    assert row["detail"] == "edr 40 → 45 (+5); quantity from minimum 45 by Jane Doe (override 7); Huntress 40"


def test_minimum_below_usage_bills_the_count() -> None:
    row = edr(with_override((7, 250, "edr", "minimum", 10), edr=40, quantity=38))
    assert (row["outcome"], row["new_quantity"], row["huntress_quantity"]) == ("change", 40, 40)
    assert row["override_id"] == 7  # it applied, and decided nothing new


def test_minimum_already_billed_is_unchanged_and_says_so() -> None:
    row = edr(with_override((7, 250, "edr", "minimum", 45), edr=30, quantity=45))
    assert (row["outcome"], row["new_quantity"]) == ("unchanged", 45)
    assert row["detail"] == "edr 45: quantity from minimum 45 by Jane Doe (override 7); Huntress 30"


def test_fixed_bills_exactly_its_quantity() -> None:
    low = edr(with_override((8, 250, "edr", "fixed", 36), edr=40, quantity=38))
    assert (low["outcome"], low["new_quantity"], low["huntress_quantity"]) == ("change", 36, 40)
    assert "fixed 36 by Jane Doe (override 8)" in low["detail"]
    same = edr(with_override((8, 250, "edr", "fixed", 38), edr=4, quantity=38))
    assert (same["outcome"], same["new_quantity"]) == ("unchanged", 38)


def test_fixed_needs_no_count() -> None:
    """A fixed rule does not read Huntress's count: a missing one does not hold the key."""
    usage = usage_of(line(101, "Acme Corp", edr=ABSENT))
    row = edr(with_override((8, 250, "edr", "fixed", 38), usage=usage, quantity=30))
    assert (row["outcome"], row["new_quantity"]) == ("change", 38)
    assert pd.isna(row["huntress_quantity"])


def test_minimum_with_a_missing_count_keeps_the_reason() -> None:
    usage = usage_of(line(101, "Acme Corp", edr=ABSENT))
    row = edr(with_override((7, 250, "edr", "minimum", 30), usage=usage, quantity=30))
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "invalid_usage")
    assert "minimum 30 by Jane Doe (override 7)" in row["detail"]


@pytest.mark.parametrize("usage", [40, 0, "12", ABSENT])
def test_exclude_is_unchanged_whatever_the_sync_sees(usage: Any) -> None:
    row = edr(with_override((9, 250, "edr", "exclude", None), edr=usage, quantity=38))
    assert (row["outcome"], row["new_quantity"], row["previous_quantity"]) == ("unchanged", 38, 38.0)
    assert pd.isna(row["reason_code"]) and row["override_id"] == 9
    assert row["detail"].startswith("edr left alone (exclude by Jane Doe (override 9); Huntress ")
    assert row["detail"].endswith("ConnectWise 38): the sync never touches this company and product")


def test_exclude_of_a_company_not_on_the_invoice_is_unchanged() -> None:
    usage = usage_of(line(102, "Other", edr=1))
    row = edr(with_override((9, 250, "edr", "exclude", None), usage=usage, quantity=38))
    assert row["outcome"] == "unchanged" and pd.isna(row["reason_code"])
    assert "the sync never touches this company and product" in row["detail"]


def test_an_override_is_still_guarded() -> None:
    """Applied before the guard: a big change it asks for is held like any other."""
    row = edr(with_override((7, 250, "edr", "minimum", 100), edr=40, quantity=40))
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "change_exceeds_limit")
    assert pd.isna(row["new_quantity"])
    assert row["detail"].startswith("edr 40 → 100 (+60, +150.0%) exceeds max_change_units=10")
    assert row["detail"].endswith("quantity from minimum 100 by Jane Doe (override 7); Huntress 40")
    fixed_to_zero = edr(with_override((8, 250, "edr", "fixed", 0), edr=40, quantity=4))
    assert fixed_to_zero["reason_code"] == "change_exceeds_limit"
    assert "needs allow_drop_to_zero" in fixed_to_zero["detail"]


def test_a_minimum_without_an_addition_is_no_live_addition() -> None:
    out = with_override((7, 250, "edr", "minimum", 5), edr=0, additions=frames.empty("additions"))
    row = edr(out)
    assert (row["outcome"], row["reason_code"]) == ("quarantined", "no_live_addition")
    no_rule = edr(with_override(edr=0, additions=frames.empty("additions")))
    assert no_rule["outcome"] == "not_applicable"


def test_overrides_apply_to_their_company_and_product_only() -> None:
    out = with_override((7, 250, "sat", "fixed", 99), (8, 251, "edr", "fixed", 99), edr=40, quantity=38)
    row = edr(out)
    assert pd.isna(row["override_id"])
    assert row["new_quantity"] == 40 and row["detail"] == "edr 38 → 40 (+2)"
    assert key(out, "company:250:sat")["override_id"] == 7


def test_an_unmapped_organization_carries_no_override() -> None:
    out = rc.reconcile(
        usage_of(line(777, "Nobody", edr=5)),
        orgs_of((777, "Nobody", "nobody")),
        companies_of(ACME),
        frames.empty("additions"),
        frames.empty("org_map"),
        Settings(),
        BILLING,
        overrides=overrides_of((7, 250, "edr", "fixed", 9)),
    )
    row = key(out, "organization:777:edr")
    assert row["reason_code"] == "unmapped_organization" and pd.isna(row["override_id"])


@pytest.mark.parametrize("quantity", [2.5, -1, None])
def test_an_unusable_override_is_not_applied(quantity: Any) -> None:
    row = edr(with_override((7, 250, "edr", "fixed", quantity), edr=40, quantity=38))
    assert row["new_quantity"] == 40 and pd.isna(row["override_id"])


def test_without_overrides_nothing_changes() -> None:
    plain = rc.reconcile(
        usage_of(line(101, "Acme Corp", edr=40)),
        orgs_of(ACME_ORG),
        companies_of(ACME),
        additions_of(addition(501, 250, "edr", 38)),
        frames.empty("org_map"),
        Settings(),
        BILLING,
    )
    empty = with_override(edr=40, quantity=38)
    pd.testing.assert_frame_equal(plain, empty)
    assert plain["override_id"].isna().all() and plain["override"].isna().all()
