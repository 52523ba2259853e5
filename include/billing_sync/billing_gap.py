"""Which way a gap between Huntress and ConnectWise runs, in a billing person's words.

Money reads at a glance (issue 20 §3): ConnectWise billing less than Huntress counts is
**under-billed** (a revenue leak), billing more is **over-billed** (a credit risk: the customer is
owed it back).

Amounts at stake are kept unsigned (reconcile/money.py: price × |aimed-for − ConnectWise|); the way
they run is read here from the held row's own numbers, so the amount and its sign never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from . import money

UNDER, OVER = "under", "over"
LABELS = {UNDER: "under-billed (revenue leak)", OVER: "over-billed (credit risk)"}
# ConnectWise bills nothing for these (no addition, no company): Huntress's count is all unbilled.
_UNBILLED = frozenset({"no_live_addition", "unmapped_organization", "ambiguous_company_match"})


def of_difference(value: Any) -> str:
    """The way of ConnectWise − Huntress (a run's `difference`): UNDER below 0, OVER above, '' at 0."""
    a = money.amount(value)
    if a is None or a == 0:
        return ""
    return UNDER if a < 0 else OVER


class HeldRow(Protocol):
    """A held row (a quarantine row, or one as a page shows it): `reason_code`, `payload` (the
    outcome row that held the key, as JSON), `amount_at_stake`, read by name."""

    def get(self, key: str, /) -> object: ...


def of_row(row: HeldRow) -> str:
    """The way a held row's amount at stake runs: the quantity the sync aimed for against the one
    ConnectWise bills; '' when the row does not say (several additions, an unreadable count)."""
    reason = row.get("reason_code")
    if reason in _UNBILLED:
        return UNDER
    if reason == "missing_from_invoice":  # ConnectWise bills what Huntress no longer counts
        return OVER
    payload = row.get("payload")
    p: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    aimed = money.amount(p.get("target"))
    for fallback in ("new_quantity", "huntress_quantity"):  # a push-time row: what it meant to write
        if aimed is None:
            aimed = money.amount(p.get(fallback))
    billed = money.amount(p.get("previous_quantity"))
    if aimed is None or billed is None or aimed == billed:
        return ""
    return UNDER if aimed > billed else OVER


def totals(rows: Iterable[HeldRow]) -> list[dict[str, str]]:
    """The amounts at stake of `rows` summed per way (under-billed first): kind, label, amount."""
    sums: dict[str, Decimal] = {}
    for r in rows:
        kind, amount = of_row(r), money.amount(r.get("amount_at_stake"))
        if kind and amount:
            sums[kind] = sums.get(kind, Decimal(0)) + amount
    return [{"kind": k, "label": LABELS[k], "amount": money.fmt(sums[k])} for k in (UNDER, OVER) if k in sums]
