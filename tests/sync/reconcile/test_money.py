"""reconcile/money.py: the money of each key and of a run, exact (docs/contract.md §4 money)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd

from billing_sync import frames
from billing_sync import reconcile as rc
from billing_sync.config import Settings
from tests.helpers.overrides_frame import overrides_of
from tests.sync.reconcile import (
    ACME,
    ACME_ORG,
    BILLING,
    addition,
    companies_of,
    key,
    line,
    orgs_of,
    usage_of,
)

CATALOG_ITEMS = [
    {"id": 752, "identifier": "HUNTRESS-EDR", "price": 7.25},
    {"id": 753, "identifier": "HUNTRESS-ITDR", "price": 4.1},
    {"id": 754, "identifier": "HUNTRESS-SAT"},  # no price
]


def priced(*pairs: tuple[dict, dict], prices: dict[int, Any]) -> pd.DataFrame:
    """Additions with `unitPrice` by addition id (absent where not given)."""
    agreements = {ag["id"]: ag for ag, _ in pairs}
    records = [{**a, **({"unitPrice": prices[a["id"]]} if a["id"] in prices else {})} for _, a in pairs]
    return frames.additions_frame(agreements, records)


def run(
    usage: pd.DataFrame, additions: pd.DataFrame, catalog: Any = CATALOG_ITEMS, **more: Any
) -> pd.DataFrame:
    return rc.reconcile(
        usage,
        more.get("organizations", orgs_of(ACME_ORG)),
        companies_of(ACME),
        additions,
        frames.empty("org_map"),
        more.get("settings", Settings()),
        BILLING,
        overrides=more.get("overrides"),
        catalog=frames.catalog_frame(catalog) if catalog is not None else None,
    )


def money(row: dict[str, Any], column: str) -> Decimal | None:
    return None if pd.isna(row[column]) else Decimal(row[column])


def test_a_change_carries_its_unit_price_and_monthly_amount_exactly() -> None:
    adds = priced(addition(501, 250, "edr", 38), addition(502, 250, "itdr", 10), prices={501: 6.5, 502: 0.1})
    out = run(usage_of(line(101, "Acme Corp", edr=41, itdr=13)), adds)
    edr, itdr = key(out, "company:250:edr"), key(out, "company:250:itdr")
    assert (money(edr, "unit_price"), money(edr, "monthly_amount_delta")) == (Decimal("6.5"), Decimal("19.5"))
    # 0.1 × 3 is 0.3 exactly, not 0.30000000000000004.
    assert (money(itdr, "unit_price"), money(itdr, "monthly_amount_delta")) == (
        Decimal("0.1"),
        Decimal("0.3"),
    )
    assert money(edr, "catalog_price") == Decimal("7.25")
    assert pd.isna(edr["amount_at_stake"])


def test_a_drop_is_a_negative_amount_and_unchanged_is_zero() -> None:
    adds = priced(addition(501, 250, "edr", 38), addition(502, 250, "itdr", 10), prices={501: 12.99, 502: 4})
    out = run(usage_of(line(101, "Acme Corp", edr=31, itdr=10)), adds)
    assert money(key(out, "company:250:edr"), "monthly_amount_delta") == Decimal("-90.93")
    assert money(key(out, "company:250:itdr"), "monthly_amount_delta") == Decimal(0)


def test_no_unit_price_means_no_monthly_amount() -> None:
    adds = priced(addition(501, 250, "edr", 38), prices={})
    row = key(run(usage_of(line(101, "Acme Corp", edr=40)), adds), "company:250:edr")
    assert pd.isna(row["unit_price"]) and pd.isna(row["monthly_amount_delta"])
    assert money(row, "catalog_price") == Decimal("7.25")  # the ledger's amount is the addition's only


def test_amount_at_stake_of_a_held_change_uses_the_addition_price() -> None:
    adds = priced(addition(501, 250, "edr", 10), prices={501: 6.5})
    row = key(run(usage_of(line(101, "Acme Corp", edr=60)), adds), "company:250:edr")
    assert row["reason_code"] == "change_exceeds_limit"
    assert money(row, "amount_at_stake") == Decimal("325")  # 6.5 × |60 − 10|
    assert pd.isna(row["monthly_amount_delta"])


def test_amount_at_stake_falls_back_to_the_catalog_price() -> None:
    adds = priced(addition(501, 250, "edr", 10), prices={})
    held = key(run(usage_of(line(101, "Acme Corp", edr=60)), adds), "company:250:edr")
    assert money(held, "amount_at_stake") == Decimal("362.5")  # 7.25 × 50
    # No live addition: ConnectWise bills nothing, so all of Huntress's units are at stake.
    missing = key(
        run(usage_of(line(101, "Acme Corp", itdr=3)), frames.empty("additions")), "company:250:itdr"
    )
    assert (missing["reason_code"], money(missing, "amount_at_stake")) == (
        "no_live_addition",
        Decimal("12.3"),
    )


def test_amount_at_stake_is_null_when_no_price_is_known() -> None:
    out = run(usage_of(line(101, "Acme Corp", sat=3)), frames.empty("additions"))
    row = key(out, "company:250:sat")
    assert row["reason_code"] == "no_live_addition" and pd.isna(row["amount_at_stake"])
    without_catalog = run(usage_of(line(101, "Acme Corp", itdr=3)), frames.empty("additions"), catalog=None)
    assert pd.isna(key(without_catalog, "company:250:itdr")["amount_at_stake"])


def test_amount_at_stake_of_other_reasons() -> None:
    # Missing from the invoice: Huntress bills 0, ConnectWise the addition's quantity.
    adds = priced(addition(501, 250, "edr", 8), prices={501: 5})
    out = run(
        usage_of(line(102, "Other Org", edr=1)),
        adds,
        organizations=orgs_of(ACME_ORG, (102, "Other Org", "o")),
    )
    assert money(key(out, "company:250:edr"), "amount_at_stake") == Decimal("40")
    # An organization no rule maps: nothing bills it, at the catalog price.
    assert money(key(out, "organization:102:edr"), "amount_at_stake") == Decimal("7.25")
    # Several live additions: no one quantity, nothing computed.
    two = priced(
        addition(501, 250, "edr", 8), addition(502, 250, "edr", 2, agreement_id=999), prices={501: 5, 502: 5}
    )
    assert pd.isna(
        key(run(usage_of(line(101, "Acme Corp", edr=9)), two), "company:250:edr")["amount_at_stake"]
    )


def test_amount_at_stake_of_an_override_is_what_the_guard_held() -> None:
    adds = priced(addition(501, 250, "edr", 10), prices={501: 2})
    out = run(
        usage_of(line(101, "Acme Corp", edr=10)), adds, overrides=overrides_of((7, 250, "edr", "minimum", 50))
    )
    row = key(out, "company:250:edr")
    assert row["reason_code"] == "change_exceeds_limit" and money(row, "amount_at_stake") == Decimal("80")


def _final(outcomes: pd.DataFrame, updated: set[str]) -> pd.DataFrame:
    final = outcomes.copy()
    final.loc[final["sync_key"].isin(updated), "outcome"] = "updated"
    return final


def test_money_totals_per_product_and_recovered() -> None:
    adds = priced(
        addition(501, 250, "edr", 38),
        addition(502, 250, "itdr", 10),
        addition(503, 250, "sat", 4),
        prices={501: 6.5, 502: 4, 503: 0.1},
    )
    out = run(usage_of(line(101, "Acme Corp", edr=41, itdr=8, sat=7)), adds)
    live = rc.live_additions(adds, BILLING, [])
    final = _final(out, {"company:250:edr", "company:250:itdr"})  # sat "planned" below
    final.loc[final["sync_key"] == "company:250:sat", "outcome"] = "planned"
    totals = rc.money_totals(final, live, frames.catalog_frame(CATALOG_ITEMS), Settings().products)
    edr = totals["products"]["edr"]
    assert Decimal(edr["huntress_amount"]) == Decimal("266.5")  # 41 × 6.5
    assert Decimal(edr["connectwise_amount_before"]) == Decimal("247")  # 38 × 6.5
    assert Decimal(edr["connectwise_amount_after"]) == Decimal("266.5")
    assert Decimal(edr["recovered"]) == Decimal("19.5") and Decimal(edr["difference"]) == 0
    assert Decimal(totals["products"]["itdr"]["recovered"]) == Decimal("-8")  # over-billing corrected
    assert Decimal(totals["recovered"]) == Decimal("11.5")  # net: 19.5 − 8
    assert Decimal(totals["planned"]) == Decimal("0.3")  # 0.1 × 3, exactly
    assert Decimal(totals["products"]["siem"]["huntress_amount"]) == 0


def test_money_totals_count_units_without_a_price() -> None:
    out = run(usage_of(line(101, "Acme Corp", sat=5, itdr=2)), frames.empty("additions"))
    totals = rc.money_totals(
        out, frames.empty("additions"), frames.catalog_frame(CATALOG_ITEMS), Settings().products
    )
    assert Decimal(totals["products"]["sat"]["unpriced_units"]) == 5
    assert Decimal(totals["products"]["itdr"]["huntress_amount"]) == Decimal("8.2")  # catalog price
    assert Decimal(totals["products"]["itdr"]["connectwise_amount_after"]) == 0
