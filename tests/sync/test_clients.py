"""The Huntress and ConnectWise clients against the real sandbox: paging, 429s, auth failures.

The clients are built the production way: from Airflow connections (AIRFLOW_CONN_* JSON) through
HttpHook.
"""

from __future__ import annotations

import time

import httpx
import pytest

from billing_sync.connectwise import ConnectWiseClient
from billing_sync.http import ApiError
from billing_sync.huntress import HuntressClient

SECRETS = ("hs_secret_value_91", "cw_private_value_77")


def scenario(orgs: int = 3, companies: int = 3, agreements: int = 2, rate: int = 60, window: float = 60) -> dict:
    return {
        "huntress": {
            "api_key": "hk_key_value", "api_secret": SECRETS[0], "rate_limit_per_minute": rate,
            "rate_limit_window_s": window,
            "account": {"id": 1, "name": "Test MSP", "subdomain": "testmsp"},
            "organizations": [{"id": 1000 + i, "name": f"Org {i}", "key": f"org{i}"} for i in range(orgs)],
            "invoices": [{
                "id": 5001, "created_at": "2026-11-01T06:00:00Z", "status": "paid", "plan": "Huntress Partner",
                "currency_type": "usd", "period_start": "2026-10-01T00:00:00Z", "period_end": "2026-11-01T00:00:00Z",
                "lines": [{"organization_id": 1000 + i, "actual_usage": {"edr": i, "itdr": 0, "sat": 1, "siem": 0}}
                          for i in range(orgs)],
            }],
        },
        "connectwise": {
            "company_id": "testmsp", "public_key": "pub_value", "private_key": SECRETS[1],
            "client_id": "11111111-2222-3333-4444-555555555555",
            "companies": [{"id": 10 + i, "identifier": f"org{i}", "name": f"Org {i}"} for i in range(companies)],
            "catalog": [{"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR"}],
            "agreements": [{
                "id": 100 + i, "name": "Managed Security", "type": "Managed Services", "company_id": 10 + i,
                "agreementStatus": "Active", "cancelledFlag": False, "startDate": "2025-01-01T00:00:00Z",
                "additions": [{"id": 500 + i, "product_id": 752, "quantity": 3,
                               "effectiveDate": "2025-01-01T00:00:00Z", "cancelledDate": None}],
            } for i in range(agreements)],
        },
    }


def use_connections(monkeypatch, sb, huntress_extra: dict | None = None, secret: str | None = None) -> None:
    env = sb.connections(huntress_secret=secret, connectwise_secret=secret, huntress_extra=huntress_extra,
                         connectwise_extra={"max_retries": 8})
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def served(url: str) -> dict:
    return httpx.get(f"{url}/_sandbox/requests", timeout=10).json()


def test_huntress_pages_through_every_organization(sandbox_factory, monkeypatch):
    sb = sandbox_factory(scenario(orgs=1234))
    use_connections(monkeypatch, sb)
    client = HuntressClient.from_connection()
    orgs = client.organizations()
    assert sorted(o["id"] for o in orgs) == list(range(1000, 2234))
    assert len(client.usage_lines(5001)) == 1234
    assert served(sb.huntress_url)["by_route"]["GET /v1/organizations"] == 3  # 500 + 500 + 234


def test_huntress_429_is_waited_out(sandbox_factory, monkeypatch):
    """Server limit 4 per 1 s window, client told 60/min: the server's 429s must be absorbed."""
    sb = sandbox_factory(scenario(orgs=1300, rate=4, window=1))
    use_connections(monkeypatch, sb, {"max_retries": 10, "rate_limit_per_minute": 60, "rate_limit_window_s": 60})
    client = HuntressClient.from_connection()
    results = [client.invoices("reseller") for _ in range(6)]
    assert all(r and r[0]["id"] == 5001 for r in results)
    assert served(sb.huntress_url)["by_status"].get("429", 0) > 0
    assert client.api.stats.retries.get("HTTP 429", 0) > 0


def test_huntress_client_limiter_avoids_429(sandbox_factory, monkeypatch):
    sb = sandbox_factory(scenario(orgs=5, rate=5, window=1))
    use_connections(monkeypatch, sb, {"rate_limit_per_minute": 5, "rate_limit_window_s": 1})
    client = HuntressClient.from_connection()
    start = time.monotonic()
    for _ in range(12):
        client.organizations()
    assert time.monotonic() - start >= 2.0  # 12 requests at 5 per second need two full windows
    assert served(sb.huntress_url)["by_status"].get("429", 0) == 0


def test_connectwise_forward_only_paging(sandbox_factory, monkeypatch):
    sb = sandbox_factory(scenario(companies=2345, agreements=3))
    use_connections(monkeypatch, sb)
    client = ConnectWiseClient.from_connection()
    companies = client.companies()
    assert sorted(c["id"] for c in companies) == list(range(10, 2355))
    assert set(companies[0]) <= {"id", "identifier", "name", "deletedFlag", "_info"}
    assert served(sb.connectwise_url)["by_route"]["GET /v4_6_release/apis/3.0/company/companies"] == 3


def test_connectwise_429_and_500_are_retried(sandbox_factory, monkeypatch):
    sb = sandbox_factory(scenario(agreements=30))
    httpx.post(f"{sb.connectwise_url}/_sandbox/faults", timeout=10, json={
        "latency_ms": 0, "status_rate": {"500": 0.15, "429": 0.15}, "reset_rate": 0.05, "retry_after_s": 0,
        "seed": 3}).raise_for_status()
    use_connections(monkeypatch, sb)
    client = ConnectWiseClient.from_connection(concurrency=4)
    client.api.retry.base_delay = 0.01
    adds = client.additions(range(100, 130), ["HUNTRESS-EDR"])
    assert sorted(a["id"] for a in adds) == list(range(500, 530))
    stats = served(sb.connectwise_url)["by_status"]
    assert stats.get("429", 0) > 0 and stats.get("500", 0) > 0


@pytest.mark.parametrize("api", ["huntress", "connectwise"])
def test_auth_failure_is_clear_and_leaks_no_secret(sandbox_factory, monkeypatch, api):
    sb = sandbox_factory(scenario())
    wrong = "wrong_secret_value_123"
    use_connections(monkeypatch, sb, secret=wrong)
    with pytest.raises(ApiError) as err:
        if api == "huntress":
            HuntressClient.from_connection().organizations()
        else:
            ConnectWiseClient.from_connection().companies()
    text = str(err.value) + repr(err.value.body)
    assert "401" in text and ("/v1/organizations" in text or "/company/companies" in text)
    for secret in (*SECRETS, wrong, "hk_key_value", "pub_value"):
        assert secret not in text
