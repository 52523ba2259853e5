"""The fewest requests a full reseller run can make on a scenario, computed from the scenario alone.

Every list is read at the API's largest page (Huntress 500, ConnectWise 1000; an empty list still
costs one request), each candidate agreement's additions once (there is no endpoint across
agreements), and each change costs one read and one write. Candidate agreements are the ones the
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
    huntress = {
        "GET /v1/reseller/invoices": pages(len(h["invoices"]), HUNTRESS_PAGE),
        "GET /v1/organizations": pages(len(h["organizations"]), HUNTRESS_PAGE),
        "GET usage line items": pages(len(invoice_of(h["invoices"], billing_date)["lines"]), HUNTRESS_PAGE),
    }
    connectwise = {
        "GET /company/companies": pages(sum(1 for c in cw["companies"] if not c.get("deletedFlag")),
                                        CONNECTWISE_PAGE),
        "GET /procurement/catalog": pages(sum(1 for p in cw["catalog"]
                                              if p["identifier"].lower() in CATALOG_IDENTIFIERS), CONNECTWISE_PAGE),
        "GET /finance/agreements": pages(candidates, CONNECTWISE_PAGE),
        "GET additions (one per candidate agreement)": candidates,
        "GET addition (re-read per change)": changes,
        "PATCH addition (per change)": changes,
    }
    extract = sum(v for k, v in connectwise.items() if "per change" not in k)
    return {"huntress": huntress, "connectwise": connectwise, "candidate_agreements": candidates,
            "changes": changes, "total": sum(huntress.values()) + sum(connectwise.values()),
            "phases": {"huntress": sum(huntress.values()), "connectwise_extract": extract,
                       "connectwise_push": 2 * changes}}


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


def invoice_of(invoices: list[dict[str, Any]], billing_date: date) -> dict[str, Any]:
    same_day = [i for i in invoices if i["created_at"][:10] == billing_date.isoformat()]
    if not same_day:
        raise ValueError(f"the scenario has no invoice created on {billing_date}")
    return max(same_day, key=lambda i: i["created_at"])
