"""Huntress sandbox: credentials, 404s, the call-limit headers."""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox import API_KEY, API_SECRET

# --- auth, errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(f"{API_KEY}:wrong-{API_SECRET}".encode()).decode()},
        {"Authorization": "Basic " + base64.b64encode(API_KEY.encode()).decode()},
        {"Authorization": f"Bearer {API_SECRET}"},
        {"Authorization": "Basic !!notbase64!!"},
    ],
    ids=["none", "wrong-secret", "no-secret", "bearer", "garbage"],
)
def test_missing_or_wrong_credentials_are_401(sandbox: Sandbox, headers: dict[str, str]) -> None:
    response = httpx.get(sandbox.huntress_url + "/v1/invoices", headers=headers)
    assert response.status_code == 401
    assert response.json()["status"] == 401 and response.json()["error"]
    assert API_SECRET not in response.text and API_KEY not in response.text
    assert "x-huntress-api-call-limit" in response.headers


def test_unknown_ids_are_404(api: httpx.Client) -> None:
    for url in [
        "/v1/organizations/4242",
        "/v1/invoices/4242",
        "/v1/reseller/invoices/4242",
        "/v1/reseller/invoices/4242/organization_usage_line_items",
        "/v1/reseller/invoices/4242/account_usage_line_items",
        "/v1/no_such_route",
    ]:
        response = api.get(url)
        assert response.status_code == 404, url
        assert response.json()["status"] == 404
    assert api.get("/v1/organizations/abc").status_code == 400


def test_every_answer_carries_the_call_limit_headers(api: httpx.Client) -> None:
    for url in ["/v1/account", "/v1/invoices/4242", "/v1/organizations?limit=0"]:
        response = api.get(url)
        assert int(response.headers["x-huntress-api-call-limit"]) == 100_000
        assert 0 <= int(response.headers["x-huntress-api-call-remaining"]) < 100_000
