"""A product kept in step on several catalog items (docs/contract.md, Variable `products`; issue 21 §2):
the expansion (billing_sync.catalog) and the reconcile on frames, each item its own key, matched,
guarded and priced on its own."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from billing_sync import catalog, frames
from billing_sync import reconcile as rc
from billing_sync.apply import scope_keys
from billing_sync.config import Settings
from billing_sync.errors import ConfigError
from tests.helpers.overrides_frame import overrides_of
from tests.sync.reconcile import (
    ACME,
    ACME_ORG,
    BILLING,
    addition,
    check_shape,
    companies_of,
    key,
    line,
    orgs_of,
    usage_of,
)

EDR, INFO = "HUNTRESS-EDR", "HUNTRESS-EDR-INFO"
BOTH = {"edr": [EDR, INFO], "itdr": "HUNTRESS-ITDR"}
EDR_KEY, INFO_KEY = f"company:250:edr:{EDR}", f"company:250:edr:{INFO}"
# The informational item is not billable: ConnectWise lists it at price 0.
ITEMS = [{"id": 752, "identifier": EDR, "price": 6.5}, {"id": 760, "identifier": INFO, "price": 0}]


def settings(products: Any = BOTH) -> Settings:
    # Settings as the Variable gives them: a list value is what the config accepts for `products`.
    return Settings(products=products)


def priced(*pairs: tuple[dict, dict], prices: dict[int, Any] | None = None) -> pd.DataFrame:
    prices = prices or {}
    agreements = {ag["id"]: ag for ag, _ in pairs}
    records = [{**a, **({"unitPrice": prices[a["id"]]} if a["id"] in prices else {})} for _, a in pairs]
    return frames.additions_frame(agreements, records)


def edr(addition_id: int, quantity: Any, identifier: str = EDR, company: int = 250) -> tuple[dict, dict]:
    return addition(addition_id, company, "edr", quantity, identifier=identifier)


def run(usage: pd.DataFrame, additions: pd.DataFrame, products: Any = BOTH, **more: Any) -> pd.DataFrame:
    out = rc.reconcile(
        usage,
        more.get("organizations", orgs_of(ACME_ORG)),
        companies_of(ACME),
        additions,
        frames.empty("org_map"),
        settings(products),
        BILLING,
        overrides=more.get("overrides"),
        catalog=frames.catalog_frame(ITEMS),
    )
    check_shape(out)
    return out


# -- the expansion ---------------------------------------------------------------------------------
def test_a_string_is_one_item_and_a_list_keeps_its_order() -> None:
    assert catalog.catalog_items({"edr": EDR, "sat": ("B", "A"), "itdr": [INFO]}) == {
        "edr": (EDR,),
        "sat": ("B", "A"),
        "itdr": (INFO,),
    }


@pytest.mark.parametrize("value", [[], [""], ["A", 3], ["  "]])
def test_a_product_that_keeps_no_item_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="'edr'"):
        catalog.catalog_items({"edr": value})


def test_line_names_keep_a_single_item_product_as_it_was() -> None:
    assert [tuple(x) for x in catalog.lines(BOTH)] == [
        ("edr", EDR, f"edr:{EDR}"),
        ("edr", INFO, f"edr:{INFO}"),
        ("itdr", "HUNTRESS-ITDR", "itdr"),
    ]
    assert catalog.identifiers(BOTH) == [EDR, INFO, "HUNTRESS-ITDR"]
    assert catalog.find_line(f"edr:{INFO}", BOTH) == ("edr", INFO, f"edr:{INFO}")
    assert catalog.find_line("edr", BOTH) is None  # edr has two lines: the product alone names neither
    assert catalog.find_line("edr", {"edr": EDR}) == ("edr", EDR, "edr")
    assert catalog.find_line("edr", None) is None and catalog.find_line("edr", {"edr": 7}) is None  # type: ignore[dict-item]


def test_the_apply_scope_expands_keys_as_reconcile_spells_them() -> None:
    assert scope_keys({250}, {101}, BOTH) == {
        EDR_KEY,
        INFO_KEY,
        "company:250:itdr",
        f"organization:101:edr:{EDR}",
        f"organization:101:edr:{INFO}",
        "organization:101:itdr",
    }


def test_one_item_in_two_places_is_a_configuration_error() -> None:
    # The settings refuse it (config); reconcile refuses it too, whatever built the settings.
    with pytest.raises(ConfigError, match="catalog identifier"):
        run(
            usage_of(line(101, "Acme Corp", edr=40)),
            frames.empty("additions"),
            {"edr": [EDR, INFO], "itdr": INFO},
        )


# -- the reconcile ---------------------------------------------------------------------------------
def test_each_item_is_its_own_key_aiming_for_the_products_count() -> None:
    out = run(usage_of(line(101, "Acme Corp", edr=40, itdr=3)), priced(edr(501, 38), edr(502, 35, INFO)))
    billable, info = key(out, EDR_KEY), key(out, INFO_KEY)
    assert (billable["outcome"], billable["addition_id"], billable["catalog_identifier"]) == (
        "change",
        501,
        EDR,
    )
    assert (info["outcome"], info["addition_id"], info["catalog_identifier"]) == ("change", 502, INFO)
    assert (billable["previous_quantity"], info["previous_quantity"]) == (38, 35)
    assert billable["new_quantity"] == info["new_quantity"] == billable["huntress_quantity"] == 40
    assert info["product"] == "edr" and info["company_name"] == "Acme Corp"
    # The two changes of one product read apart; a single-item product reads as before.
    assert (billable["detail"], info["detail"]) == (f"edr {EDR} 38 → 40 (+2)", f"edr {INFO} 35 → 40 (+5)")
    # A single-item product keeps its key as before.
    assert key(out, "company:250:itdr")["reason_code"] == "no_live_addition"
    assert "company:250:edr" not in set(out["sync_key"])


def test_one_live_addition_is_counted_per_item_not_per_product() -> None:
    """Two live additions of the product, one per item, are each item's one addition; two of one
    item hold that item alone."""
    out = run(
        usage_of(line(101, "Acme Corp", edr=40)), priced(edr(501, 38), edr(502, 40, INFO), edr(503, 1, INFO))
    )
    billable, info = key(out, EDR_KEY), key(out, INFO_KEY)
    assert billable["outcome"] == "change" and billable["new_quantity"] == 40
    assert (info["outcome"], info["reason_code"]) == ("quarantined", "duplicate_addition")
    assert (
        "addition 502" in info["detail"] and "addition 503" in info["detail"] and "501" not in info["detail"]
    )
    assert INFO in info["detail"]


def test_a_missing_informational_item_is_held_alone_and_at_stake_for_nothing() -> None:
    out = run(usage_of(line(101, "Acme Corp", edr=40)), priced(edr(501, 38), prices={501: 6.5}))
    billable, info = key(out, EDR_KEY), key(out, INFO_KEY)
    assert (billable["outcome"], billable["monthly_amount_delta"]) == ("change", "13")  # 6.5 × 2
    assert (info["outcome"], info["reason_code"]) == ("quarantined", "no_live_addition")
    assert f"no live {INFO} addition" in info["detail"]
    # Price 0: the amount at stake is a known 0, not unknown, and nothing divides by the price.
    assert info["catalog_price"] == "0" and Decimal(info["amount_at_stake"]) == 0


def test_the_guard_judges_each_item_on_its_own() -> None:
    out = run(usage_of(line(101, "Acme Corp", edr=40)), priced(edr(501, 38), edr(502, 2, INFO)))
    assert key(out, EDR_KEY)["outcome"] == "change"
    info = key(out, INFO_KEY)
    assert (info["outcome"], info["reason_code"]) == ("quarantined", "change_exceeds_limit")
    assert info["detail"].startswith(f"edr {INFO} 2 → 40 (+38")


def test_a_company_off_the_invoice_has_a_missing_key_per_item() -> None:
    out = run(usage_of(line(999, "Somebody Else", edr=1)), priced(edr(501, 38), edr(502, 38, INFO)))
    assert key(out, EDR_KEY)["reason_code"] == key(out, INFO_KEY)["reason_code"] == "missing_from_invoice"
    assert key(out, INFO_KEY)["addition_id"] == 502


def test_an_unmapped_organization_is_held_per_item() -> None:
    out = run(usage_of(line(102, "Nobody Ltd", edr=4)), frames.empty("additions"))
    for item in (EDR, INFO):
        row = key(out, f"organization:102:edr:{item}")
        assert (row["reason_code"], row["catalog_identifier"]) == ("unmapped_organization", item)


def test_an_override_of_the_product_sets_every_item() -> None:
    out = run(
        usage_of(line(101, "Acme Corp", edr=40)),
        priced(edr(501, 38), edr(502, 38, INFO)),
        overrides=overrides_of((7, 250, "edr", "fixed", 39)),
    )
    assert key(out, EDR_KEY)["new_quantity"] == key(out, INFO_KEY)["new_quantity"] == 39
    assert key(out, EDR_KEY)["override_id"] == key(out, INFO_KEY)["override_id"] == 7


def test_money_totals_per_item_an_informational_item_comes_to_zero() -> None:
    adds = priced(edr(501, 38), edr(502, 38, INFO), prices={501: 6.5, 502: 0})
    out = run(usage_of(line(101, "Acme Corp", edr=40)), adds)
    final = out.assign(outcome=out["outcome"].replace({"change": "updated"}))
    live = rc.live_additions(adds, BILLING, [])
    totals = rc.money_totals(final, live, frames.catalog_frame(ITEMS), BOTH)
    assert set(totals["products"]) == {f"edr:{EDR}", f"edr:{INFO}", "itdr"}
    billable, info = totals["products"][f"edr:{EDR}"], totals["products"][f"edr:{INFO}"]
    assert (Decimal(billable["huntress_amount"]), Decimal(billable["recovered"])) == (
        Decimal(260),
        Decimal(13),
    )
    assert Decimal(billable["connectwise_amount_before"]) == Decimal(247)  # 38 × 6.5, its item's only
    for name in ("huntress_amount", "connectwise_amount_before", "connectwise_amount_after", "recovered"):
        assert Decimal(info[name]) == 0, name
    assert Decimal(info["unpriced_units"]) == 0  # priced at 0 is priced
    assert Decimal(totals["recovered"]) == Decimal(13)
