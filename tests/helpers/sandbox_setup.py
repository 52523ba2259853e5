"""Scenarios and connections for tests that run the clients against a sandbox: a small
three-organization month, the two-account month with a security role (preflight, refusals), and
the AIRFLOW_CONN_* variables that point the clients at a started sandbox."""

from __future__ import annotations

from typing import Any

SECRETS = ("hs_secret_value_91", "cw_private_value_77")


def small_scenario(
    orgs: int = 3, companies: int = 3, agreements: int = 2, rate: int = 60, window: float = 60
) -> dict:
    return {
        "huntress": {
            "api_key": "hk_key_value",
            "api_secret": SECRETS[0],
            "rate_limit_per_minute": rate,
            "rate_limit_window_s": window,
            "account": {"id": 1, "name": "Test MSP", "subdomain": "testmsp"},
            "organizations": [{"id": 1000 + i, "name": f"Org {i}", "key": f"org{i}"} for i in range(orgs)],
            "invoices": [
                {
                    "id": 5001,
                    "created_at": "2026-11-01T06:00:00Z",
                    "status": "paid",
                    "plan": "Huntress Partner",
                    "currency_type": "usd",
                    "period_start": "2026-10-01T00:00:00Z",
                    "period_end": "2026-11-01T00:00:00Z",
                    "lines": [
                        {
                            "organization_id": 1000 + i,
                            "actual_usage": {"edr": i, "itdr": 0, "sat": 1, "siem": 0},
                        }
                        for i in range(orgs)
                    ],
                }
            ],
        },
        "connectwise": {
            "company_id": "testmsp",
            "public_key": "pub_value",
            "private_key": SECRETS[1],
            "client_id": "11111111-2222-3333-4444-555555555555",
            "companies": [
                {"id": 10 + i, "identifier": f"org{i}", "name": f"Org {i}"} for i in range(companies)
            ],
            "catalog": [{"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR"}],
            "agreements": [
                {
                    "id": 100 + i,
                    "name": "Managed Security",
                    "type": "Managed Services",
                    "company_id": 10 + i,
                    "agreementStatus": "Active",
                    "cancelledFlag": False,
                    "startDate": "2025-01-01T00:00:00Z",
                    "additions": [
                        {
                            "id": 500 + i,
                            "product_id": 752,
                            "quantity": 3,
                            "effectiveDate": "2025-01-01T00:00:00Z",
                            "cancelledDate": None,
                        }
                    ],
                }
                for i in range(agreements)
            ],
        },
    }


def use_connections(monkeypatch, sb, huntress_extra: dict | None = None, secret: str | None = None) -> None:
    env = sb.connections(
        huntress_secret=secret,
        connectwise_secret=secret,
        huntress_extra=huntress_extra,
        connectwise_extra={"max_retries": 8},
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)


ROLE_VARIABLE = {
    "products": {"edr": "HUNTRESS-EDR", "sat": "HUNTRESS-SAT"},
    "agreement_types": ["Managed Services"],
}
# Huntress's documented role: Finance → Agreements Add None, Edit All, Delete None, Inquire All;
# Procurement → Product Catalog Inquire All.
HUNTRESS_ROLE: dict[str, Any] = {
    "name": "Huntress billing sync",
    "levels": {
        "finance/agreements": {"add": "none", "edit": "all", "delete": "none", "inquire": "all"},
        "procurement/catalog": {"add": "none", "edit": "none", "delete": "none", "inquire": "all"},
    },
}


def role_scenario(role: dict[str, Any] | None = None, forbidden_account: bool = False) -> dict[str, Any]:
    """Own account 1 (Acme, Beta); managed account 7 (West Co, key `west`). Acme, Beta and West Co
    each have a company and an EDR addition on their own agreement (1578, 1579, 1580)."""
    start = "2025-01-01T00:00:00Z"
    agreement = {
        "type": "Managed Services",
        "agreementStatus": "Active",
        "cancelledFlag": False,
        "startDate": start,
    }
    lines = [
        {"organization_id": 101, "actual_usage": {"edr": 40, "sat": 0}},
        {"organization_id": 102, "actual_usage": {"edr": 25, "sat": 0}},
        {"organization_id": 701, "actual_usage": {"edr": 9, "sat": 0}},
    ]
    return {
        "huntress": {
            "api_key": "hk_preflight",
            "api_secret": "hs_preflight_secret",
            "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
            "organizations": [{"id": 101, "name": "Acme Corp", "key": "acme"}, {"id": 102, "name": "Beta Dental", "key": "beta"}],
            "managed_accounts": [
                {"id": 7, "name": "West Client", "subdomain": "west", "forbidden": forbidden_account,
                 "organizations": [{"id": 701, "name": "West Co", "key": "west"}]},
            ],
            "invoices": [{"id": 5001, "created_at": "2026-11-01T06:00:00Z", "status": "paid", "lines": lines}],
        },
        "connectwise": {
            "company_id": "demomsp",
            "public_key": "pub",
            "private_key": "cw_private_preflight",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "companies": [
                {"id": 250, "identifier": "acme", "name": "Acme Corp"},
                {"id": 251, "identifier": "beta", "name": "Beta Dental"},
                {"id": 252, "identifier": "west", "name": "West Co"},
            ],
            "catalog": [
                {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR", "price": 4.5},
                {"id": 754, "identifier": "HUNTRESS-SAT", "description": "Huntress SAT", "price": 1},
            ],
            "agreements": [
                {**agreement, "id": 1578 + i, "name": f"MSA {c}", "company_id": c,
                 "additions": [{"id": 501 + i, "product_id": 752, "quantity": 30, "effectiveDate": start}]}
                for i, c in enumerate([250, 251, 252])
            ],
            **({"security_role": role} if role is not None else {}),
        },
    }  # fmt: skip
