"""Huntress product → the ConnectWise catalog items it keeps in step, and each line's name.

A line is a (product, catalog item); its name is the tail of its sync keys and the key of its totals.

`products` (docs/contract.md, Variable `products`) maps a product to one catalog identifier or to a
list of them (the billable item and the informational, non-billable one Huntress recommends keeping
beside it). Each (product, item) is a line of its own: synced, priced and checked on its own.

A line's name is the product alone when the product has one item, so the keys and totals of every
existing configuration keep their meaning (`company:42:edr`); with several items it is
`<product>:<CATALOG_IDENTIFIER>` (`company:42:edr:HUNTRESS-EDR-INFO`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

Products = Mapping[str, str | Sequence[str]]


class Line(NamedTuple):
    """One (product, catalog item) the sync keeps in step."""

    product: str
    catalog_identifier: str
    name: str  # the product, or "<product>:<identifier>" when the product has several items


def catalog_items(products: Products) -> dict[str, tuple[str, ...]]:
    """Each product's catalog identifiers, in the order configured; a single string is a 1-tuple.

    ValueError for a product with no identifier or an identifier that is not text: a product that
    keeps nothing in step is a configuration mistake, not "ignore this product"."""
    out: dict[str, tuple[str, ...]] = {}
    for product, value in products.items():
        # A str is a Sequence of str too: it must be taken whole, never as its characters.
        items = (value,) if isinstance(value, str) else tuple(value)
        if not items or not all(isinstance(i, str) and i.strip() for i in items):
            raise ValueError(f"product {product!r} must map to one or more catalog identifiers")
        out[product] = items
    return out


def lines(products: Products) -> list[Line]:
    """Every (product, item) line, products in their configured order, then items in theirs."""
    return [
        Line(product, item, product if len(items) == 1 else f"{product}:{item}")
        for product, items in catalog_items(products).items()
        for item in items
    ]


def identifiers(products: Products) -> list[str]:
    """The distinct catalog identifiers of every product, sorted: what ConnectWise is asked for."""
    return sorted({line.catalog_identifier for line in lines(products)})


def find_line(name: str, products: Products | None) -> Line | None:
    """The line a totals key names (a recorded run's, read with its recorded `products`); None when
    those products have no such line (settings not recorded, or changed since)."""
    if not isinstance(products, Mapping):
        return None
    try:
        known = lines(products)
    except (ValueError, TypeError):  # a recorded value of another shape: no line to tell
        return None
    return next((line for line in known if line.name == name), None)
