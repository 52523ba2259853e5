"""The fewest requests a full reseller run can make on a scenario, computed from the scenario alone.

Every list is read at the API's largest page (Huntress 500, ConnectWise 1000; an empty list still
costs one request), each candidate agreement's additions once (there is no endpoint across
agreements), and each change costs one read and one write. A reseller invoice spans accounts:
the organizations (with their keys) of each managed account its lines name are read once, from
`/v1/accounts/{account_id}/organizations`, besides the own account's `/v1/organizations`. Candidate agreements are the ones the
sync asks for: active and not cancelled, of any type (the default `agreement_types`).
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

HUNTRESS_PAGE, CONNECTWISE_PAGE = 500, 1000
CATALOG_IDENTIFIERS = frozenset({"huntress-edr", "huntress-itdr", "huntress-sat", "huntress-siem"})


def pages(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))


def lower_bound(scenario: dict[str, Any], billing_date: date) -> dict[str, Any]:
    h, cw = scenario["huntress"], scenario["connectwise"]
    candidates = candidate_agreements(cw["agreements"])
    changes = scenario["meta"]["counts"]["clean_keys"]["changed"]
    invoice = invoice_of(h["invoices"], billing_date)
    huntress = {
        "GET /v1/reseller/invoices": pages(len(h["invoices"]), HUNTRESS_PAGE),
        "GET /v1/organizations": pages(len(h["organizations"]), HUNTRESS_PAGE),
        "GET usage line items": pages(len(invoice["lines"]), HUNTRESS_PAGE),
        "GET /v1/accounts/{account_id}/organizations": sum(
            pages(len(account.get("organizations", [])), HUNTRESS_PAGE)
            for account in managed_accounts_on(h, invoice)
        ),
    }
    connectwise = {
        "GET /company/companies": pages(
            sum(1 for c in cw["companies"] if not c.get("deletedFlag")), CONNECTWISE_PAGE
        ),
        "GET /procurement/catalog": pages(
            sum(1 for p in cw["catalog"] if p["identifier"].lower() in CATALOG_IDENTIFIERS), CONNECTWISE_PAGE
        ),
        "GET /finance/agreements": pages(candidates, CONNECTWISE_PAGE),
        "GET additions (one per candidate agreement)": candidates,
        "GET addition (re-read per change)": changes,
        "PATCH addition (per change)": changes,
    }
    extract = sum(v for k, v in connectwise.items() if "per change" not in k)
    return {
        "huntress": huntress,
        "connectwise": connectwise,
        "candidate_agreements": candidates,
        "changes": changes,
        "total": sum(huntress.values()) + sum(connectwise.values()),
        "phases": {
            "huntress": sum(huntress.values()),
            "connectwise_extract": extract,
            "connectwise_push": 2 * changes,
        },
    }


def candidate_agreements(agreements: list[dict[str, Any]]) -> int:
    return sum(1 for a in agreements if _status(a) == "Active" and not a.get("cancelledFlag"))


def _status(agreement: dict[str, Any]) -> str:
    """As the sandbox serves it: the given status, else Cancelled / Expired (end date passed) / Active."""
    if agreement.get("agreementStatus"):
        return agreement["agreementStatus"]
    if agreement.get("cancelledFlag"):
        return "Cancelled"
    end = agreement.get("endDate")
    if end and datetime.fromisoformat(end.replace("Z", "+00:00")) < datetime.now(UTC):
        return "Expired"
    return "Active"


def managed_accounts_on(h: dict[str, Any], invoice: dict[str, Any]) -> list[dict[str, Any]]:
    """The managed accounts (scenario `managed_accounts`) with an organization on the invoice."""
    on_invoice = {line["organization_id"] for line in invoice["lines"]}
    return [
        a for a in h.get("managed_accounts", []) if on_invoice & {o["id"] for o in a.get("organizations", [])}
    ]


def invoice_of(invoices: list[dict[str, Any]], billing_date: date) -> dict[str, Any]:
    """The standing invoice created on the billing date (voided, full_refund and draft never bill)."""
    same_day = [
        i
        for i in invoices
        if i["created_at"][:10] == billing_date.isoformat()
        and i["status"] not in ("voided", "full_refund", "draft")
    ]
    if len(same_day) != 1:
        raise ValueError(
            f"the scenario has {len(same_day)} standing invoices created on {billing_date}, not one"
        )
    return same_day[0]
