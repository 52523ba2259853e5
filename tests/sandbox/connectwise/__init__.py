"""The ConnectWise Manage sandbox over real HTTP, against the real `python -m billing_sandbox` process.

Most tests share one process per test module (the `sandbox` fixture of conftest.py, started like
`sandbox_factory` does, through `start_sandbox`) so the suite stays fast; tests that write reset the
data afterwards through `POST /_sandbox/reset`. The `sandbox_factory` tests cover the demo scenario
and the state/reset admin routes end to end. Here: the scenario they share and helpers.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.sandbox import make_scenario

PREFIX = "/v4_6_release/apis/3.0/"
COMPANY_ID, PUBLIC_KEY, PRIVATE_KEY = "demomsp", "pub-KEY-7f3a", "priv-SECRET-9c1e"
CLIENT_ID = "3f0b1c2e-aaaa-bbbb-cccc-123456789abc"
SECRETS = (PUBLIC_KEY, PRIVATE_KEY, CLIENT_ID)
N_COMPANIES = 2400
SPECIAL_NAME = 'O\'Brien "Quoted" Ltd'


def company_src(i: int) -> dict[str, Any]:
    company: dict[str, Any] = {"id": 1000 + 3 * i, "identifier": f"co{i:04d}", "name": f"Company {i:04d}"}
    if i % 50 == 0:
        company["deletedFlag"] = True
    if i % 7 == 0:
        company["status"] = "Inactive"
    if i % 11 == 0:
        company["types"] = ["Prospect"]
    return company


COMPANIES = [company_src(i) for i in range(1, N_COMPANIES + 1)] + [
    {"id": 9001, "identifier": "obrien", "name": SPECIAL_NAME}
]
CATALOG = [
    {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR", "price": 5.5, "cost": 3},
    {"id": 753, "identifier": "HUNTRESS-ITDR", "description": "Huntress ITDR", "price": 2, "cost": 1.25},
    {"id": 754, "identifier": "HUNTRESS-SAT", "description": "Huntress SAT", "price": 1, "cost": 0.4},
    {"id": 755, "identifier": "LEGACY-AV", "description": "Legacy AV", "inactiveFlag": True},
]
AGREEMENTS: list[dict[str, Any]] = [
    {
        "id": 1578,
        "name": "Managed Security",
        "type": "Managed Services",
        "company_id": 1003,
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
            },
            {
                "id": 502,
                "product_id": 753,
                "quantity": 12,
                "lessIncluded": 2,
                "effectiveDate": "2025-01-01T00:00:00Z",
            },
            {
                "id": 503,
                "product_id": 754,
                "quantity": 30,
                "effectiveDate": "2025-01-01T00:00:00Z",
                "cancelledDate": "2025-06-01T00:00:00Z",
            },
        ],
    },
    {
        "id": 1579,
        "name": "Old Block",
        "type": "Block Time",
        "company_id": 1006,
        "agreementStatus": "Cancelled",
        "cancelledFlag": True,
        "dateCancelled": "2025-03-01T00:00:00Z",
        "startDate": "2024-01-01T00:00:00Z",
        "additions": [{"id": 504, "product_id": 752, "quantity": 5}],
    },
    {
        "id": 1580,
        "name": "Security Plus",
        "type": "Managed Services",
        "company_id": 1009,
        "agreementStatus": "Active",
        "startDate": "2025-06-01T00:00:00Z",
        "endDate": "2030-12-31T00:00:00Z",
        "noEndingDateFlag": False,
        "additions": [
            {"id": 505, "product_id": 752, "quantity": 7},
            {"id": 506, "product_id": 752, "quantity": 0, "effectiveDate": "2026-12-01T00:00:00Z"},
        ],
    },
    {
        "id": 1581,
        "name": "Expired Plan",
        "type": "Managed Services",
        "company_id": 1003,
        "agreementStatus": "Expired",
        "startDate": "2023-01-01T00:00:00Z",
        "endDate": "2024-12-31T00:00:00Z",
    },
] + [
    {
        "id": 1582 + i,
        "name": f"Bulk {i}",
        "type": "Managed Services" if i % 2 else "Break Fix",
        "company_id": 1000 + 3 * (10 + i),
        "startDate": "2025-02-01T00:00:00Z",
    }
    for i in range(19)
]


def scenario() -> dict[str, Any]:
    data = make_scenario(1)
    data["connectwise"] = {
        "company_id": COMPANY_ID,
        "public_key": PUBLIC_KEY,
        "private_key": PRIVATE_KEY,
        "client_id": CLIENT_ID,
        "companies": COMPANIES,
        "catalog": CATALOG,
        "agreements": AGREEMENTS,
    }
    return data


def client(url: str, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=url + PREFIX,
        auth=(f"{COMPANY_ID}+{PUBLIC_KEY}", PRIVATE_KEY),
        headers={"clientId": CLIENT_ID, **headers},
        timeout=30,
    )


ADDITION = "finance/agreements/1578/additions/501"


def all_ids(c: httpx.Client, path: str, **params: Any) -> list[int]:
    """Every id of a list, forward-only, following rel="next"."""
    out: list[int] = []
    resp = c.get(
        path, params={"pageSize": 1000, "fields": "id", **params}, headers={"pagination-type": "forward-only"}
    )
    while True:
        assert resp.status_code == 200, resp.text
        out += [r["id"] for r in resp.json()]
        nxt = resp.links.get("next")
        if not nxt:
            return out
        resp = c.get(nxt["url"], headers={"pagination-type": "forward-only"})


def assert_error(
    resp: httpx.Response, status: int, code: str, detail_code: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "errors"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    for err in body["errors"]:
        assert set(err) == {"code", "message", "resource", "field"}
    if detail_code:
        assert body["errors"][0]["code"] == detail_code
    for secret in SECRETS:
        assert secret not in resp.text
    return body
