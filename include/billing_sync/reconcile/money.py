"""Money per key, and the money totals of a run: exact (`Decimal`), from the prices read with the data.

Per key (`_price_keys`, columns of the outcomes frame, Decimal text):

    unit_price            the key's one live addition's unitPrice, as read (no extra request:
                          `unitPrice` comes with the additions)
    catalog_price         the mapped catalog item's price, as read with the catalog item
    monthly_amount_delta  change / unchanged: unit_price × (new − previous); NA without a unit_price.
                          A held key a person approves is priced again when released, at the
                          approved quantity (approvals.py); a created addition at its catalog price
    amount_at_stake       quarantined: price × |aimed-for − ConnectWise|, the price the addition's,
                          else the catalog item's; NA when no price or either quantity is unknown

For `amount_at_stake`, "aimed-for" is the quantity the sync would set (Huntress's count, or an
override's: what the guard judged) and "ConnectWise" the addition's quantity. Decisions: where the
company has no live addition (`no_live_addition`, and an organization no rule maps to a company)
ConnectWise bills 0; where none of its organizations is on the invoice (`missing_from_invoice`)
Huntress counts 0; a key with several live additions has no one quantity, so nothing at stake is
computed (NA).

Totals (`money_totals`, one run, after the push): per (product, catalog item) line (keyed by its
name, billing_sync.catalog: the product alone when it has one item), what Huntress's units come to (each
key's count × its price) against what ConnectWise bills (each live addition's quantity × its price,
before the push; after = before + the deltas the run wrote), the units without a price; the run's
`recovered` amount: the **net** monthly amount the run changed in ConnectWise, the sum of
`monthly_amount_delta` over its `updated` rows and the approved additions it `created` (negative when
it mostly lowered over-billed quantities); `planned`, the same over `planned` rows (dry run, report
only). Amounts in the result are
Decimal text, so it travels as JSON (XCom, `billing_runs.checks`) without losing a cent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import pandas as pd

from billing_sync import frames, money
from billing_sync.catalog import Products, lines
from billing_sync.results import MoneyTotals, ProductMoney

_Cell = str | int | float | bool | None  # a frame's cell as a Python value (NA → None)


def _price_keys(out: pd.DataFrame, live: pd.DataFrame, catalog: pd.DataFrame | None) -> pd.DataFrame:
    """`out` (decided and described keys) with the four money columns."""
    n = len(out)
    unit = _addition_prices(out["addition_id"], live)
    listed = _catalog_prices(catalog)
    cat = (
        out["catalog_identifier"].map(listed).astype("string")
        if len(listed)
        else pd.Series(pd.NA, index=out.index, dtype="string")
    )
    out["unit_price"] = unit.to_numpy()
    out["catalog_price"] = cat.to_numpy()
    outcome = out["outcome"].to_numpy(dtype=object)
    new = _floats(out["new_quantity"])
    old = _floats(out["previous_quantity"])

    pushable = np.isin(outcome, ["change", "unchanged"])
    delta = np.where(pushable, new - old, np.nan)
    out["monthly_amount_delta"] = _times(out["unit_price"], delta)

    reason = out["reason_code"].fillna("").to_numpy(dtype=object)
    held = outcome == "quarantined"
    aimed = _floats(out["target"]) if "target" in out.columns else np.full(n, np.nan)
    aimed = np.where(np.isnan(aimed) & (reason == "missing_from_invoice"), 0.0, aimed)
    n_live = out["n_live"].to_numpy(dtype="float64") if "n_live" in out.columns else np.full(n, np.nan)
    held_cw = np.where(np.isnan(old) & (n_live == 0), 0.0, old)
    price = out["unit_price"].fillna(out["catalog_price"])
    out["amount_at_stake"] = _times(price, np.where(held, np.abs(aimed - held_cw), np.nan))
    return out


def _floats(values: pd.Series) -> np.ndarray:
    return values.astype("Float64").to_numpy(dtype="float64", na_value=np.nan)


def _addition_prices(addition_ids: pd.Series, live: pd.DataFrame) -> pd.Series:
    """The unitPrice (Decimal text) of each key's addition; NA without one (or without a price)."""
    known = live.dropna(subset=["addition_id", "unit_price"]).drop_duplicates("addition_id")
    texts = _texts(known["unit_price"])
    prices = pd.Series(texts.to_numpy(), index=known["addition_id"].astype("int64").to_numpy())
    ids = addition_ids.astype("Int64")
    return (
        ids.map(prices).astype("string") if len(prices) else pd.Series(pd.NA, index=ids.index, dtype="string")
    )


def _catalog_prices(catalog: pd.DataFrame | None) -> pd.Series:
    """Catalog identifier → price (Decimal text); the first item of an identifier that has one."""
    if catalog is None or not len(catalog):
        return pd.Series(dtype="string")
    items = frames.conform(catalog, "catalog").dropna(subset=["identifier", "price"])
    items = items.drop_duplicates("identifier")
    return pd.Series(_texts(items["price"]).to_numpy(), index=items["identifier"].to_numpy(), dtype="string")


def _texts(values: pd.Series) -> pd.Series:
    """Floats as read → Decimal text, one conversion per distinct value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = np.array([money.text(float(u)) for u in np.asarray(uniques, dtype=object)] + [None], dtype=object)
    return pd.Series(texts[codes], index=values.index, dtype="string")


def _times(prices: pd.Series, units: np.ndarray) -> np.ndarray:
    """price × units as Decimal text, NA where either is unknown: one Decimal product per distinct
    (price, units) pair, so a hundred thousand keys cost a few hundred multiplications."""
    pairs = pd.DataFrame({"price": prices.to_numpy(dtype=object), "units": units})
    known = pairs["price"].notna().to_numpy(dtype=bool) & ~np.isnan(units)
    result = np.full(len(pairs), None, dtype=object)
    if known.any():
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(pairs[known]))
        products = np.array([money.text(money.times(p, u)) for p, u in uniques], dtype=object)
        result[known] = products[codes]
    return result  # objects: text or None (frames.conform makes the column "string")


# -- totals ------------------------------------------------------------------------------------------
def money_totals(
    final: pd.DataFrame,
    live: pd.DataFrame,
    catalog: pd.DataFrame | None,
    products: Products,
) -> MoneyTotals:
    """The money of one run (see the module docstring): `products` (per line `huntress_amount`,
    `connectwise_amount_before`, `connectwise_amount_after`, `difference`, `recovered`, `planned`,
    `unpriced_units`) and the run's `recovered`, `planned`, `huntress_amount`,
    `connectwise_amount_after`: Decimal text. `final` is the outcomes frame after the push
    (`steps.final_outcomes`), `live` the live additions as read."""
    listed = _catalog_prices(catalog)
    per: dict[str, _LineMoney] = {}
    rows = _plain(
        final,
        [
            "product",
            "catalog_identifier",
            "huntress_quantity",
            "unit_price",
            "catalog_price",
            "outcome",
            "monthly_amount_delta",
            "previous_quantity",
            "new_quantity",
        ],
    )
    adds = _plain(live, ["product_identifier", "quantity", "unit_price"])
    for line in lines(products):
        identifier = line.catalog_identifier
        # An item priced 0 (an informational item) comes to 0 on both sides: sums only, no division.
        mine = [r for r in rows if r["product"] == line.product and r["catalog_identifier"] == identifier]
        huntress, unpriced = Decimal(0), Decimal(0)
        for r in mine:
            units = money.amount(r["huntress_quantity"])
            if units is None:
                continue
            price = r["unit_price"] if r["unit_price"] is not None else r["catalog_price"]
            if price is None:
                unpriced += units
            else:
                huntress += money.times(price, units) or Decimal(0)
        catalog_price = listed.get(identifier)
        before = Decimal(0)
        for a in adds:
            if a["product_identifier"] != identifier:
                continue
            price = a["unit_price"] if a["unit_price"] is not None else catalog_price
            before += money.times(price, a["quantity"]) or Decimal(0)
        recovered = money.total(_delta(r) for r in mine if r["outcome"] in ("updated", "created"))
        planned = money.total(_delta(r) for r in mine if r["outcome"] == "planned")
        after = before + recovered
        per[line.name] = _LineMoney(huntress, before, after, recovered, planned, unpriced)
    return {
        "products": {name: t.as_text() for name, t in per.items()},
        "recovered": money.text(sum((t.recovered for t in per.values()), Decimal(0))),
        "planned": money.text(sum((t.planned for t in per.values()), Decimal(0))),
        "huntress_amount": money.text(sum((t.huntress for t in per.values()), Decimal(0))),
        "connectwise_amount_after": money.text(sum((t.after for t in per.values()), Decimal(0))),
    }


@dataclass(frozen=True)
class _LineMoney:
    """One line's sums, exact, before they become text."""

    huntress: Decimal
    before: Decimal
    after: Decimal
    recovered: Decimal
    planned: Decimal
    unpriced: Decimal

    def as_text(self) -> ProductMoney:
        return {
            "huntress_amount": money.text(self.huntress),
            "connectwise_amount_before": money.text(self.before),
            "connectwise_amount_after": money.text(self.after),
            "difference": money.text(self.after - self.huntress),
            "recovered": money.text(self.recovered),
            "planned": money.text(self.planned),
            "unpriced_units": money.text(self.unpriced),
        }


def _delta(r: Mapping[str, _Cell]) -> Decimal | str | float | int | None:
    """A key's monthly amount; for an approved new addition (no unit price of its own: ConnectWise
    bills it at the catalog item's price) the catalog price × its quantity."""
    if r["monthly_amount_delta"] is None and r["unit_price"] is None and r["previous_quantity"] is None:
        return money.times(r["catalog_price"], r["new_quantity"])
    return r["monthly_amount_delta"]


def _plain(df: pd.DataFrame, columns: Iterable[str]) -> list[dict[str, _Cell]]:
    """Rows as dicts of Python values, NA → None."""
    cols = list(columns)
    arrays = [df[c].astype(object).where(df[c].notna(), None).to_numpy(dtype=object) for c in cols]
    return [dict(zip(cols, values, strict=True)) for values in zip(*arrays, strict=True)]
