"""The apply month: the scenario the Apply now tests run (a held change, a missing addition, an
organization no rule maps), its settings, the keys and ids they act on, and the sandbox's quantities."""

from __future__ import annotations

from typing import Any

from tests.proof.helpers import admin

DAY = "2026-11-01"
VARIABLE = {"products": {"edr": "HUNTRESS-EDR"}}
HELD, MISSING, MAPPED = "company:251:edr", "company:252:edr", "company:253:edr"
UNMAPPED = "organization:104:edr"
HELD_ADDITION, HELD_AGREEMENT, DELTA_ADDITION = 502, 1579, 504


def scenario() -> dict[str, Any]:
    """Acme in step (40); Beta held (40 → 5, past the guard); Gamma with usage but no EDR addition;
    organization 104 ("Delta Holdings", key "dh") that no rule maps to Delta Co (6 EDR on its
    addition, 7 on the invoice)."""
    agreement = {"type": "Managed Services", "agreementStatus": "Active", "cancelledFlag": False}
    start = "2025-01-01T00:00:00Z"
    return {
        "huntress": {
            "api_key": "hk_apply",
            "api_secret": "hs_apply",
            "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
            "organizations": [
                {"id": 101, "name": "Acme Corp", "key": "acme"},
                {"id": 102, "name": "Beta Dental", "key": "beta"},
                {"id": 103, "name": "Gamma Law", "key": "gamma"},
                {"id": 104, "name": "Delta Holdings", "key": "dh"},
            ],
            "invoices": [
                {
                    "id": 5001,
                    "created_at": f"{DAY}T06:00:00Z",
                    "status": "paid",
                    "lines": [
                        {"organization_id": 101, "actual_usage": {"edr": 40}},
                        {"organization_id": 102, "actual_usage": {"edr": 5}},
                        {"organization_id": 103, "actual_usage": {"edr": 12}},
                        {"organization_id": 104, "actual_usage": {"edr": 7}},
                    ],
                }
            ],
        },
        "connectwise": {
            "company_id": "demomsp",
            "public_key": "pub",
            "private_key": "priv_apply",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "companies": [
                {"id": 250, "identifier": "acme", "name": "Acme Corp"},
                {"id": 251, "identifier": "beta", "name": "Beta Dental"},
                {"id": 252, "identifier": "gamma", "name": "Gamma Law"},
                {"id": 253, "identifier": "deltaco", "name": "Delta Co"},
            ],
            "catalog": [
                {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR", "price": 4.5},
                {"id": 753, "identifier": "BACKUP", "description": "Backup"},
            ],
            "agreements": [
                {**agreement, "id": 1578, "name": "Acme MSA", "company_id": 250, "startDate": start,
                 "additions": [{"id": 501, "product_id": 752, "quantity": 40, "effectiveDate": start}]},
                {**agreement, "id": HELD_AGREEMENT, "name": "Beta MSA", "company_id": 251, "startDate": start,
                 "additions": [{"id": HELD_ADDITION, "product_id": 752, "quantity": 40, "effectiveDate": start,
                                "unitPrice": 6.5}]},
                {**agreement, "id": 1580, "name": "Gamma MSA", "company_id": 252, "startDate": start,
                 "additions": [{"id": 503, "product_id": 753, "quantity": 2, "effectiveDate": start}]},
                {**agreement, "id": 1581, "name": "Delta MSA", "company_id": 253, "startDate": start,
                 "additions": [{"id": DELTA_ADDITION, "product_id": 752, "quantity": 6, "effectiveDate": start}]},
            ],
        },
    }  # fmt: skip


def quantities(sb: Any) -> dict[int, Any]:
    return {a["id"]: a["quantity"] for a in admin(sb.connectwise_url, "state")["additions"]}
