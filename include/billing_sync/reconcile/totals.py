"""A run's close, computed: its outcomes after the push, the totals check and the money of the run.

Pure functions on frames and rows the caller read (steps reads them from the run's store): no I/O.

    after_push   the outcomes once the push is recorded: `change`/`create` become updated, created,
                 planned or quarantined (with the push's reason)
    totals_check what Huntress bills against what ConnectWise bills, per product line
    run_money    the money of the run (money.money_totals) with each line's units and what is held
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypedDict, cast

import pandas as pd

from billing_sync import catalog, money
from billing_sync.catalog import Products
from billing_sync.results import HeldTotals, MoneyTotals, ProductCheck, TotalsCheck

from .approvals import HELD_REASON
from .money import money_totals

TO_PUSH = ("change", "create")  # outcomes the push acts on: a quantity to write, an approved addition
PUSH_REASONS = ("changed_since_read", "push_rejected")  # the reasons the push itself quarantines with


class Recorded(TypedDict):
    """What after_push reads of a ledger row (store.records.LedgerRow)."""

    sync_key: str
    action: str


class Quarantined(TypedDict):
    """What after_push reads of a quarantine row (store.records.QuarantineRow)."""

    sync_key: str
    reason_code: str
    detail: str | None


def after_push(
    outcomes: pd.DataFrame, ledger: Iterable[Recorded], quarantine: Iterable[Quarantined]
) -> pd.DataFrame:
    """Outcomes after the push: `change` becomes updated / planned / quarantined (with reason).

    `ledger`: the run's ledger rows; `quarantine`: its quarantine rows (open or not). Raises
    RuntimeError for a change with no recorded result (the push did not finish)."""
    recorded = {r["sync_key"]: r["action"] for r in ledger}
    # What the push quarantined: its own reasons, and the held reason an approval that did not
    # apply leaves its key in (push-time reasons first, when a key has both).
    failed = {
        q["sync_key"]: q
        for q in sorted(quarantine, key=lambda q: q["reason_code"] in PUSH_REASONS)
        if q["reason_code"] in (*PUSH_REASONS, *HELD_REASON.values())
    }
    out = outcomes.copy()
    approved = out["approval_id"].notna()
    for i in out.index[out["outcome"].isin(TO_PUSH)]:
        key = cast(str, out.at[i, "sync_key"])  # a "string" column (frames.SCHEMAS)
        action = recorded.get(key)
        if action in ("updated", "planned", "created"):
            out.at[i, "outcome"] = action
        elif action == "failed" and key not in failed and approved[i]:
            # Its held row was dismissed meanwhile (a dismissed row keeps its run): still held.
            held = "no_live_addition" if out.at[i, "outcome"] == "create" else "change_exceeds_limit"
            out.at[i, "outcome"], out.at[i, "reason_code"] = "quarantined", held
        elif key in failed:
            out.at[i, "outcome"] = "quarantined"
            out.at[i, "reason_code"] = failed[key]["reason_code"]
            out.at[i, "detail"] = failed[key]["detail"]
        else:
            raise RuntimeError(f"{key}: a change with no recorded result; the push did not finish")
    return out


def totals_check(
    final: pd.DataFrame,
    usage: pd.DataFrame,
    live: pd.DataFrame,
    organizations: pd.DataFrame,
    products: Products,
    invoice_quantity: object,
) -> TotalsCheck:
    """The promise users care about: what Huntress bills equals what ConnectWise bills.

    `final`: the outcomes after the push; `usage`, `organizations`: the run's staged frames; `live`:
    the live additions as read; `invoice_quantity`: the invoice's own quantity (None when unknown).
    """
    refused = (
        organizations.dropna(subset=["unreadable"]).drop_duplicates("account_id").sort_values("account_id")
    )
    checks_out: TotalsCheck = {
        "products": {},
        "mismatches": [],
        "unreadable_accounts": [
            {"account_id": int(a), "detail": str(d)}
            for a, d in zip(refused["account_id"], refused["unreadable"], strict=True)
            if not pd.isna(a)
        ],
    }
    edr_lines = usage.loc[usage["product"] == "edr", "quantity"]
    if invoice_quantity is not None and "edr" in products:
        lines_edr = int(edr_lines.sum())
        checks_out["invoice_quantity"] = {
            "invoice": invoice_quantity,
            "sum_of_line_edr": lines_edr,
            "invalid_edr_lines": int(edr_lines.isna().sum()),
        }
        if invoice_quantity != lines_edr:
            checks_out["mismatches"].append(
                f"invoice quantity {invoice_quantity} ≠ sum of its lines' edr {lines_edr}"
            )
    updated = final[final["outcome"] == "updated"]
    created = final[final["outcome"] == "created"]  # approved new additions: all new units
    overridden = final.loc[final["override_id"].notna(), "catalog_identifier"].value_counts().to_dict()
    # Per (product, catalog item) line: every item of a product aims for the product's one count,
    # so each is checked against it on its own (keyed by the line's name, billing_sync.catalog).
    for line in catalog.lines(products):
        product, identifier = line.product, line.catalog_identifier
        huntress_total = int(usage.loc[usage["product"] == product, "quantity"].sum())
        before = float(live.loc[live["product_identifier"] == identifier, "quantity"].sum())
        upd = updated[updated["catalog_identifier"] == identifier]
        after = before + float((upd["new_quantity"].astype("Float64") - upd["previous_quantity"]).sum())
        mine = created["catalog_identifier"] == identifier
        after += float(created.loc[mine, "new_quantity"].astype("Float64").sum())
        checks_out["products"][line.name] = ProductCheck(
            huntress=huntress_total,
            connectwise_before=before,
            connectwise_after=after,
            difference=after - huntress_total,
        )
        if after != huntress_total:
            # An override bills other than Huntress counts on purpose: the sentence says so.
            why = (
                f" ({overridden[identifier]} key(s) under an override)" if overridden.get(identifier) else ""
            )
            checks_out["mismatches"].append(
                f"{line.name}: Huntress bills {huntress_total}, ConnectWise bills {after:g} after the push{why}"
            )
    return checks_out


def run_money(
    final: pd.DataFrame,
    live: pd.DataFrame,
    catalog_frame: pd.DataFrame | None,
    products: Products,
    units: Mapping[str, ProductCheck],
    held: HeldTotals,
) -> MoneyTotals:
    """The money a billing manager asks for first (money.money_totals, amounts as Decimal text):
    per product line Huntress vs ConnectWise in units (`units`: totals_check's products) and money;
    what the run recovered (the net monthly amount it changed in ConnectWise); what is still held, by
    reason (`held`: the run's open quarantine rows, as store.held_totals sums them)."""
    out = money_totals(final, live, catalog_frame, products)
    for product, totals in out["products"].items():
        counted = units.get(product)
        totals["huntress_units"] = counted["huntress"] if counted else None
        totals["connectwise_units_before"] = counted["connectwise_before"] if counted else None
        totals["connectwise_units_after"] = counted["connectwise_after"] if counted else None
    out["held"] = {
        "reasons": [
            {
                "reason_code": r["reason_code"],
                "rows": r["rows"],
                "priced_rows": r["priced_rows"],
                "amount": money.text(r["amount"]),
            }
            for r in held["reasons"]
        ],
        "rows": held["rows"],
        "priced_rows": held["priced_rows"],
        "amount": money.text(held["amount"]),
    }
    return out
