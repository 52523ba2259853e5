"""The demo month (scenarios/demo.json): what its first run holds, what a billing person decides about
each planted problem, and the oracle's reads of the sandboxes' own state (not the billing database).
Shared by the month-close tests (tests/ui/test_month_close.py: re-runs; test_month_close_apply_now.py:
Apply now on `make airflow`)."""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from tests.ui.conftest import BILLING_DATE


class Sandboxes(Protocol):
    """Where the two sandboxes answer (tests.conftest.Sandbox, or `make airflow`'s)."""

    huntress_url: str
    connectwise_url: str


# --- what the billing person decides, by sync key (company, or organization when unmatched) ---------
# The demo plants these (scenarios/demo.json meta.planted); the fixture checks the first run finds
# exactly them, so a regenerated demo fails here by name instead of somewhere below.
FIRST_RUN_KEYS = {
    ("unmapped_organization", ("org", 125), "edr"),
    ("unmapped_organization", ("org", 125), "sat"),
    ("unmapped_organization", ("org", 133), "siem"),
    ("unmapped_organization", ("org", 138), "edr"),
    ("unmapped_organization", ("org", 138), "sat"),
    *(("ambiguous_company_match", ("org", 160), p) for p in ("edr", "itdr", "sat", "siem")),
    ("no_live_addition", 282, "sat"),
    ("no_live_addition", 309, "edr"),
    ("no_live_addition", 339, "edr"),
    ("no_live_addition", 353, "edr"),
    ("no_live_addition", 431, "edr"),
    ("duplicate_addition", 316, "edr"),
    ("duplicate_addition", 295, "sat"),
    ("invalid_usage", 380, "sat"),
    ("invalid_usage", 380, "itdr"),
    ("invalid_usage", 317, "edr"),
    ("invalid_usage", 317, "itdr"),
    ("invalid_usage", 419, "edr"),
    ("invalid_usage", 419, "sat"),
    ("change_exceeds_limit", 280, "itdr"),
    ("change_exceeds_limit", 446, "itdr"),
    ("change_exceeds_limit", 362, "sat"),
    ("change_exceeds_limit", 369, "edr"),
    ("missing_from_invoice", 374, "edr"),
    ("missing_from_invoice", 374, "sat"),
    ("missing_from_invoice", 292, "edr"),
    ("missing_from_invoice", 329, "edr"),
}
# organization → company: 160 "Harborview  Logistics LLP" is ambiguous between 381 and 400 (only 381
# has a live agreement); 125 "Parkside Physical Therapy" is "Parkside PT LLC" in ConnectWise.
CANDIDATE_MAP = (160, 381, "Harborview Logistics LLP")
PICKER_MAP = (125, 374, "Parkside PT LLC", "Parkside")
# held changes approved as they are: (company, product) → note; the organization whose count it is
APPROVE = {
    (280, "itdr"): ("Customer cancelled ITDR at the end of October (ticket 4711)", 161),
    (362, "sat"): ("New security awareness contract for all 56 staff", 116),
    (369, "edr"): ("Second office onboarded in October, confirmed with the customer", 113),
}
# missing additions to create: (company, product) → (agreement to pick, the organization billed)
CREATE = {
    (282, "sat"): (1504, 140),
    (431, "edr"): (1512, 126),
    (353, "edr"): (1541, 105),
    (339, "edr"): (1607, 121),
}
CREATE_AFTER_MAPPING = {(381, p): (1583, 160) for p in ("edr", "itdr", "sat", "siem")}
# standing overrides: (company, product, rule, quantity, note, the organization counted)
OVERRIDES = [
    (446, "itdr", "minimum", 25, "Contract minimum of 25 ITDR identities (signed 2026-03)", 156),
    (317, "edr", "fixed", 50, "Fixed 50 seats on the Fully Managed contract", 139),
    (316, "edr", "exclude", None, "Billed by hand until the duplicate addition is removed", 158),
]
DISMISS = {
    (
        "unmapped_organization",
        ("org", 133),
        "siem",
    ): "New customer, not in ConnectWise yet: billed from December",
    ("unmapped_organization", ("org", 138), "edr"): "Delta Foods left; its ConnectWise company is deleted",
    ("unmapped_organization", ("org", 138), "sat"): "Delta Foods left; its ConnectWise company is deleted",
    ("no_live_addition", 309, "edr"): "Addition 20231 starts 2026-12-08: billed from December",
    ("duplicate_addition", 295, "sat"): "Asked the ConnectWise admin to end one of the two additions",
    ("invalid_usage", 380, "sat"): "Fractional count: asked Huntress support",
    ("invalid_usage", 380, "itdr"): "No ITDR count on the line: asked Huntress support",
    ("invalid_usage", 317, "itdr"): "Implausible count: asked Huntress support",
    ("invalid_usage", 419, "edr"): "Negative count: asked Huntress support",
    ("invalid_usage", 419, "sat"): "Count sent as text: asked Huntress support",
    ("missing_from_invoice", 292, "edr"): "Customer left Huntress: ending the addition in ConnectWise",
    ("missing_from_invoice", 329, "edr"): "Customer churned: ending the addition in ConnectWise",
}
RESOLVED_BY_MAPPING = {
    *(("ambiguous_company_match", ("org", 160), p) for p in ("edr", "itdr", "sat", "siem")),
    ("unmapped_organization", ("org", 125), "edr"),
    ("unmapped_organization", ("org", 125), "sat"),
    ("missing_from_invoice", 374, "edr"),
    ("missing_from_invoice", 374, "sat"),
}


def connectwise_state(sb: Sandboxes) -> dict[str, Any]:
    state = httpx.get(f"{sb.connectwise_url}/_sandbox/state", timeout=30)
    assert state.status_code == 200, state.text
    return state.json()


def invoice_usage(sb: Sandboxes) -> dict[tuple[int, str], Any]:
    """(organization, product) → the count on the billing date's invoice, from Huntress's own state."""
    state = httpx.get(f"{sb.huntress_url}/_sandbox/state", timeout=30).json()
    [invoice] = [i for i in state["invoices"] if i["created_at"].startswith(BILLING_DATE)]
    return {
        (line["organization"]["id"], product): count
        for line in invoice["organization_usage_line_items"]
        for product, count in line["actual_usage"].items()
    }


def row_key(row: dict[str, Any]) -> tuple[str, Any, str | None]:
    who = (
        row["cw_company_id"] if row["cw_company_id"] is not None else ("org", row["huntress_organization_id"])
    )
    return (row["reason_code"], who, row["product"])


def live_addition(cw: dict[str, Any], company: int, product: str) -> dict[str, Any]:
    """The one live Huntress addition of a company and product in ConnectWise's state."""
    agreements = {
        a["id"]: a
        for a in cw["agreements"]
        if a["company"]["id"] == company and a["agreementStatus"] == "Active" and not a.get("cancelledFlag")
    }
    found = [
        a
        for a in cw["additions"]
        if a["agreementId"] in agreements
        and a["product"]["identifier"] == f"HUNTRESS-{product.upper()}"
        and not a.get("cancelledDate")
        and a["effectiveDate"][:10] <= BILLING_DATE
    ]
    assert len(found) == 1, (company, product, found)
    return found[0]
