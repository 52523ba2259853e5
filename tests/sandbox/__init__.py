"""Tests of the local Huntress and ConnectWise sandbox; small scenario builders shared by them."""

from __future__ import annotations

import copy
from typing import Any

API_KEY, API_SECRET = "hk_test_key", "hs_test_secret_0123456789"

CONNECTWISE_SECTION: dict[str, Any] = {
    "company_id": "demomsp",
    "public_key": "pub",
    "private_key": "priv",
    "client_id": "00000000-0000-0000-0000-000000000000",
    "companies": [{"id": 250, "identifier": "acme", "name": "Acme Corp"}],
    "catalog": [{"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR"}],
    "agreements": [
        {
            "id": 1578,
            "name": "Managed Security",
            "type": "Managed Services",
            "company_id": 250,
            "agreementStatus": "Active",
            "cancelledFlag": False,
            "startDate": "2025-01-01T00:00:00Z",
            "additions": [
                {
                    "id": 501,
                    "product_id": 752,
                    "quantity": 38,
                    "effectiveDate": "2025-01-01T00:00:00Z",
                    "cancelledDate": None,
                }
            ],
        }
    ],
}


def organizations(count: int) -> list[dict[str, Any]]:
    return [{"id": 100 + i, "name": f"Org {i}", "key": f"org{i}"} for i in range(1, count + 1)]


def usage_lines(orgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"organization_id": org["id"], "actual_usage": {"edr": 10 * i, "itdr": i, "sat": 2 * i, "siem": 0}}
        for i, org in enumerate(orgs, start=1)
    ]


def invoice(invoice_id: int, created_at: str, lines: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "id": invoice_id,
        "created_at": created_at,
        "status": "paid",
        "plan": "Huntress Partner",
        "currency_type": "usd",
        "lines": lines,
        **extra,
    }


def make_scenario(
    orgs: int | list[dict[str, Any]] = 3, invoices: list[dict[str, Any]] | None = None, **huntress: Any
) -> dict[str, Any]:
    """A valid scenario: the organizations (or that many), by default one paid invoice with a line for each."""
    orgs = organizations(orgs) if isinstance(orgs, int) else orgs
    if invoices is None:
        invoices = [
            invoice(
                5001,
                "2026-11-01T06:00:00Z",
                usage_lines(orgs),
                period_start="2026-10-01T00:00:00Z",
                period_end="2026-11-01T00:00:00Z",
            )
        ]
    return {
        "huntress": {
            "api_key": API_KEY,
            "api_secret": API_SECRET,
            "rate_limit_per_minute": 100_000,
            "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
            "organizations": orgs,
            "invoices": invoices,
            **huntress,
        },
        "connectwise": copy.deepcopy(CONNECTWISE_SECTION),
    }
