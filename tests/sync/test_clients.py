"""The Huntress and ConnectWise clients against the real sandbox: paging, 429s, auth failures.

The clients are built the production way: from Airflow connections (AIRFLOW_CONN_* JSON) through
HttpHook.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from billing_sync.connectwise import ConnectWiseClient
from billing_sync.http import ApiError
from billing_sync.huntress import HuntressClient
from tests.conftest import Sandbox, start_sandbox
from tests.helpers.sandbox_setup import SECRETS, small_scenario, use_connections


def served(url: str) -> dict:
    return httpx.get(f"{url}/_sandbox/requests", timeout=10).json()


@pytest.fixture(scope="module")
def small_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(small_scenario(), tmp_path_factory.mktemp("clients"))
    yield sb
    sb.stop()


@pytest.fixture
def small(small_sandbox: Sandbox) -> Sandbox:
    """The default small scenario's sandbox, shared by the module (a process costs most of a CPU
    second to start): reset first, so its data, faults and request counts are this test's alone."""
    for url in (small_sandbox.huntress_url, small_sandbox.connectwise_url):
        httpx.post(f"{url}/_sandbox/reset", timeout=10).raise_for_status()
    return small_sandbox


def test_huntress_pages_through_every_organization(sandbox_factory, monkeypatch):
    sb = sandbox_factory(small_scenario(orgs=1234))
    use_connections(monkeypatch, sb)
    client = HuntressClient.from_connection()
    orgs = client.organizations()
    assert sorted(o["id"] for o in orgs) == list(range(1000, 2234))
    assert len(client.usage_lines(5001)) == 1234
    assert served(sb.huntress_url)["by_route"]["GET /v1/organizations"] == 3  # 500 + 500 + 234


def test_huntress_429_is_waited_out(sandbox_factory, monkeypatch):
    """Server limit 4 per 1 s window, client told 60 per window: the server's 429s must be absorbed.

    The client waits out its own view of the window after each 429, so its window is 1 s here too."""
    sb = sandbox_factory(small_scenario(orgs=1300, rate=4, window=1))
    use_connections(
        monkeypatch, sb, {"max_retries": 10, "rate_limit_per_minute": 60, "rate_limit_window_s": 1}
    )
    client = HuntressClient.from_connection()
    results = [client.invoices("reseller") for _ in range(6)]
    assert all(r and r[0]["id"] == 5001 for r in results)
    assert served(sb.huntress_url)["by_status"].get("429", 0) > 0
    assert client.api.stats.retries.get("HTTP 429", 0) > 0


def test_huntress_client_limiter_avoids_429(sandbox_factory, monkeypatch):
    sb = sandbox_factory(small_scenario(orgs=5, rate=5, window=1))
    use_connections(monkeypatch, sb, {"rate_limit_per_minute": 5, "rate_limit_window_s": 1})
    client = HuntressClient.from_connection()
    start = time.monotonic()
    for _ in range(12):
        client.organizations()
    assert time.monotonic() - start >= 2.0  # 12 requests at 5 per second need two full windows
    assert served(sb.huntress_url)["by_status"].get("429", 0) == 0


def test_connectwise_forward_only_paging(sandbox_factory, monkeypatch):
    sb = sandbox_factory(small_scenario(companies=2345, agreements=3))
    use_connections(monkeypatch, sb)
    client = ConnectWiseClient.from_connection()
    companies = client.companies()
    assert sorted(c["id"] for c in companies) == list(range(10, 2355))
    assert set(companies[0]) <= {"id", "identifier", "name", "deletedFlag", "_info"}
    assert served(sb.connectwise_url)["by_route"]["GET /v4_6_release/apis/3.0/company/companies"] == 3


def test_connectwise_catalog_page_and_agreement_types_for_the_settings_picker(sandbox_factory, monkeypatch):
    """One request of the catalog, capped, saying whether it is all of it; the agreement types."""
    data = small_scenario()
    data["connectwise"]["catalog"] = [
        {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR"},
        {"id": 753, "identifier": "HUNTRESS-SAT", "description": "Huntress SAT"},
        {"id": 760, "identifier": "OLD-EDR", "description": "Retired EDR", "inactiveFlag": True},
    ]
    sb = sandbox_factory(data)
    use_connections(monkeypatch, sb)
    client = ConnectWiseClient.from_connection()
    items, whole = client.catalog_page()
    assert whole and {i["identifier"]: i["inactiveFlag"] for i in items} == {
        "HUNTRESS-EDR": False,
        "HUNTRESS-SAT": False,
        "OLD-EDR": True,
    }
    assert set(items[0]) <= {"id", "identifier", "description", "inactiveFlag", "_info"}
    capped, whole = client.catalog_page(limit=2)
    assert [i["identifier"] for i in capped] == ["HUNTRESS-EDR", "HUNTRESS-SAT"] and not whole
    assert served(sb.connectwise_url)["by_route"]["GET /v4_6_release/apis/3.0/procurement/catalog"] == 2
    assert "Managed Services" in {t["name"] for t in client.agreement_types()}


def test_connectwise_429_and_500_are_retried(sandbox_factory, monkeypatch):
    sb = sandbox_factory(small_scenario(agreements=30))
    httpx.post(
        f"{sb.connectwise_url}/_sandbox/faults",
        timeout=10,
        json={
            "latency_ms": 0,
            "status_rate": {"500": 0.15, "429": 0.15},
            "reset_rate": 0.05,
            "retry_after_s": 0,
            "seed": 3,
        },
    ).raise_for_status()
    use_connections(monkeypatch, sb)
    client = ConnectWiseClient.from_connection(concurrency=4)
    client.api.retry.base_delay = 0.01
    adds = client.additions(range(100, 130), ["HUNTRESS-EDR"])
    assert sorted(a["id"] for a in adds) == list(range(500, 530))
    stats = served(sb.connectwise_url)["by_status"]
    assert stats.get("429", 0) > 0 and stats.get("500", 0) > 0


@pytest.mark.parametrize("api", ["huntress", "connectwise"])
def test_auth_failure_is_clear_and_leaks_no_secret(small, monkeypatch, api):
    sb = small
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


# -- ConnectWise as it really is (issue #8 §2) ------------------------------------------------------


def test_connectwise_pins_a_released_api_version_overridable_per_connection(small, monkeypatch):
    from billing_sync.connectwise import API_VERSION

    sb = small
    use_connections(monkeypatch, sb)
    session = ConnectWiseClient.from_connection().api.session
    assert API_VERSION == "2025.1"  # released, and pinned by public clients (not the future 2026.11)
    assert session.headers["Accept"] == "application/vnd.connectwise.com+json; version=2025.1"
    env = sb.connections(connectwise_extra={"api_version": "2024.1", "codebase": "v4_6_release/"})
    monkeypatch.setenv("AIRFLOW_CONN_CONNECTWISE_DEFAULT", env["AIRFLOW_CONN_CONNECTWISE_DEFAULT"])
    client = ConnectWiseClient.from_connection()
    headers = {k.lower(): v for k, v in client.api.session.headers.items()}
    assert headers["accept"] == "application/vnd.connectwise.com+json; version=2024.1"
    assert "api_version" not in headers and "codebase" not in headers  # settings, not headers
    assert len(client.companies()) == 3
    for bad in ("latest", 2025.1, "v2025.1"):
        env = sb.connections(connectwise_extra={"api_version": bad})
        monkeypatch.setenv("AIRFLOW_CONN_CONNECTWISE_DEFAULT", env["AIRFLOW_CONN_CONNECTWISE_DEFAULT"])
        with pytest.raises(ApiError, match="api_version must be a release"):
            ConnectWiseClient.from_connection()


def test_connectwise_requests_the_real_addition_fields(small, monkeypatch):
    sb = small
    use_connections(monkeypatch, sb)
    adds = ConnectWiseClient.from_connection().additions([100, 101], ["HUNTRESS-EDR"])
    assert [(a["agreementStatus"], a["unitPrice"]) for a in adds] == [("Active", 0), ("Active", 0)]
    log = httpx.get(f"{sb.connectwise_url}/_sandbox/requests", params={"log": 1}, timeout=10).json()["log"]
    fields = {e["query"] for e in log if e["path"].endswith("/additions")}
    assert fields and all("additionStatus" not in q and "unitPrice" in q for q in fields)


def test_unknown_company_null_companyinfo_names_credentials(small, monkeypatch):
    sb = small
    env = sb.connections()
    conn = json.loads(env["AIRFLOW_CONN_CONNECTWISE_DEFAULT"])
    conn["login"] = "nosuchcompany+" + conn["login"].split("+", 1)[1]
    monkeypatch.setenv("AIRFLOW_CONN_CONNECTWISE_DEFAULT", json.dumps(conn))
    with pytest.raises(ApiError) as err:
        ConnectWiseClient.from_connection()
    assert "check the company id / credentials" in str(err.value)
    assert "not found" not in str(err.value).lower() and "nosuchcompany" not in str(err.value)


def test_bad_credentials_answered_404_name_credentials_not_not_found(sandbox_factory, monkeypatch):
    data = small_scenario()
    data["connectwise"]["bad_credentials_status"] = 404  # as cloud ConnectWise sometimes answers
    sb = sandbox_factory(data)
    wrong = "wrong_secret_value_123"
    use_connections(monkeypatch, sb, secret=wrong)
    with pytest.raises(ApiError) as err:
        ConnectWiseClient.from_connection().companies()
    text = str(err.value)
    assert err.value.status == 404 and "/company/companies" in text
    assert "check the company id / credentials" in text and "not found" not in text.lower()
    for secret in (*SECRETS, wrong, "pub_value"):
        assert secret not in text + repr(err.value.body)


def test_a_404_after_a_good_answer_stays_a_404(small, monkeypatch):
    sb = small
    use_connections(monkeypatch, sb)
    client = ConnectWiseClient.from_connection()
    client.companies()
    with pytest.raises(ApiError) as err:
        client.addition(100, 999)
    assert err.value.status == 404 and "credentials" not in str(err.value)


def test_connectwise_409_is_retried_then_given_up(sandbox_factory, monkeypatch):
    from billing_sync.push import push_one

    sb = sandbox_factory(small_scenario(agreements=3))
    faults = f"{sb.connectwise_url}/_sandbox/faults"
    httpx.post(faults, timeout=10, json={"status_rate": {"409": 0.5}, "seed": 0}).raise_for_status()
    use_connections(monkeypatch, sb)
    client = ConnectWiseClient.from_connection()
    client.api.retry.base_delay = 0.01
    for agreement_id, addition_id in ((100, 500), (101, 501), (102, 502)):
        assert client.set_quantity(agreement_id, addition_id, 9)["quantity"] == 9
    assert served(sb.connectwise_url)["by_status"].get("409", 0) > 0
    assert client.api.stats.retries.get("HTTP 409", 0) > 0

    httpx.post(faults, timeout=10, json={"status_rate": {"409": 1.0}}).raise_for_status()
    client.api.retry.attempts = 3
    change = {
        "sync_key": "company:10:edr",
        "previous_quantity": 9,
        "new_quantity": 12,
        "agreement_id": 100,
        "addition_id": 500,
    }
    result = push_one(client, change)
    assert (result.action, result.reason_code) == ("failed", "push_rejected")
    assert "failed after 3 attempts: HTTP 409" in result.detail


def test_huntress_keeps_409_a_refusal():
    from billing_sync.connectwise import CONNECTWISE_RETRYABLE
    from billing_sync.http import RETRYABLE_STATUS, ApiSession

    assert 409 not in RETRYABLE_STATUS and 409 in CONNECTWISE_RETRYABLE
    assert ApiSession("Huntress", lambda: None, "http://x").retry_status == RETRYABLE_STATUS


# -- Huntress: resellers' managed accounts, 429s without headers (issue #8 §3) ------------------------


def managed_scenario() -> dict:
    """Own organizations 1000..1002; managed account 7 (600 organizations, two pages), 8 (not on the
    invoice) and 9; the invoice has lines of the own account, of 7 and of 9."""
    data = small_scenario(orgs=3)
    h = data["huntress"]
    h["managed_accounts"] = [
        {
            "id": 7,
            "name": "West",
            "subdomain": "west",
            "organizations": [{"id": 7000 + i, "name": f"West {i}", "key": f"w{i}"} for i in range(600)],
        },
        {
            "id": 8,
            "name": "Unbilled",
            "subdomain": "unbilled",
            "organizations": [{"id": 8000, "name": "U", "key": "u"}],
        },
        {
            "id": 9,
            "name": "North",
            "subdomain": "north",
            "organizations": [{"id": 9000, "name": "N", "key": "org0"}],
        },
    ]
    h["invoices"][0]["lines"] += [
        {"organization_id": o, "actual_usage": {"edr": 1}} for o in (7000, 7599, 9000)
    ]
    return data


def test_huntress_reads_the_managed_accounts_the_invoice_names(sandbox_factory, monkeypatch):
    sb = sandbox_factory(managed_scenario())
    use_connections(monkeypatch, sb)
    client = HuntressClient.from_connection()
    orgs = client.invoice_organizations(client.usage_lines(5001))
    by_id = {o["id"]: o for o in orgs}
    assert len(orgs) == 3 + 600 + 1 and 8000 not in by_id  # account 8 is not on the invoice: not read
    assert (by_id[7599]["key"], by_id[7599]["account_id"]) == ("w599", 7)
    assert (by_id[9000]["key"], by_id[9000]["account_id"]) == ("org0", 9)  # the same key as own 1000
    assert by_id[1000]["account_id"] == 1
    routes = served(sb.huntress_url)["by_route"]
    assert routes["GET /v1/accounts/{account_id}/organizations"] == 3  # 500 + 100 of account 7, 1 of 9
    assert routes["GET /v1/organizations"] == 1
    log = httpx.get(f"{sb.huntress_url}/_sandbox/requests", params={"log": 1}, timeout=10).json()["log"]
    assert all("limit=500" in e["query"] for e in log if "/v1/accounts/" in e["path"])


def test_huntress_skips_an_account_it_cannot_read(sandbox_factory, monkeypatch, caplog):
    sb = sandbox_factory(small_scenario(orgs=2))
    use_connections(monkeypatch, sb)
    client = HuntressClient.from_connection()
    lines = [{"account": {"id": 1}}, {"account": {"id": 4242}}]  # 4242: not managed by these credentials
    orgs = client.invoice_organizations(lines)
    assert sorted(o["id"] for o in orgs) == [1000, 1001]
    assert "Huntress account 4242 is named on the invoice but its organizations cannot be read" in caplog.text


def test_huntress_headerless_429s_from_a_shared_key_lose_nothing(sandbox_factory, monkeypatch):
    """Another tool eats into the window and 429s carry no headers: the run waits, and finishes.

    max_retries 2: a 429 spending a retry (the old behaviour) would fail at the second refusal."""
    sb = sandbox_factory(small_scenario(orgs=600, rate=6, window=2))
    # 5 of the 6 slots of each 2 s window go to the other tool. The client is told 7 per window, so
    # it cannot read the 200s' call-limit headers (another limit) and knows nothing of that tool:
    # it meets 429s however fast or slow the machine is.
    httpx.post(
        f"{sb.huntress_url}/_sandbox/faults",
        timeout=10,
        json={"rate_limit_headers": False, "foreign_requests_per_minute": 150},
    ).raise_for_status()
    use_connections(
        monkeypatch,
        sb,
        {"max_retries": 2, "rate_limit_per_minute": 7, "rate_limit_window_s": 2, "max_rate_limit_wait_s": 60},
    )
    client = HuntressClient.from_connection()
    for _ in range(2):
        assert sorted(o["id"] for o in client.organizations()) == list(range(1000, 1600))
        assert len(client.usage_lines(5001)) == 600
    assert served(sb.huntress_url)["by_status"].get("429", 0) > 0
    assert client.api.stats.retries["HTTP 429"] > 0


def test_huntress_rate_limit_wait_is_bounded(sandbox_factory, monkeypatch):
    sb = sandbox_factory(small_scenario(rate=5, window=30))
    httpx.post(
        f"{sb.huntress_url}/_sandbox/faults",
        timeout=10,
        json={"rate_limit_headers": False, "foreign_requests_per_minute": 6000},
    ).raise_for_status()
    time.sleep(0.2)  # another tool has taken the whole window
    use_connections(
        monkeypatch, sb, {"rate_limit_per_minute": 5, "rate_limit_window_s": 30, "max_rate_limit_wait_s": 5}
    )
    with pytest.raises(ApiError) as err:
        HuntressClient.from_connection().organizations()
    assert err.value.status == 429
    assert str(err.value).startswith(
        "Huntress GET /v1/organizations is still rate limited (HTTP 429) after waiting 0s"
    )
    assert "max_rate_limit_wait_s=5" in str(err.value)


def test_huntress_an_account_answering_403_stops_no_other(sandbox_factory, monkeypatch, caplog):
    """Issue 22 §4: the definition documents 200 and 403 for an account's organizations."""
    data = managed_scenario()
    data["huntress"]["managed_accounts"][2]["forbidden"] = True  # account 9, organization 9000
    sb = sandbox_factory(data)
    use_connections(monkeypatch, sb)
    client = HuntressClient.from_connection()
    orgs = client.invoice_organizations(client.usage_lines(5001))
    by_id = {o["id"]: o for o in orgs}
    assert len(orgs) == 3 + 600 + 1 and by_id[7599]["key"] == "w599"  # account 7 still read
    refused = by_id[9000]
    assert (refused["account_id"], refused["key"], refused["name"]) == (9, None, "N")  # as the line names it
    assert "account 9 (HTTP 403" in refused["unreadable"] and SECRETS[0] not in refused["unreadable"]
    assert all("unreadable" not in o for i, o in by_id.items() if i != 9000)
    assert "Huntress refused to list the organizations of account 9" in caplog.text


def test_huntress_account_mode_reads_actual_usages_as_object_or_string(sandbox_factory, monkeypatch):
    sb = sandbox_factory(small_scenario(orgs=3))
    use_connections(monkeypatch, sb)
    client = HuntressClient.from_connection()
    orgs = client.organizations()
    as_object = client.account_usage_lines(orgs)
    httpx.post(f"{sb.huntress_url}/_sandbox/faults", json={"actual_usages_as_string": True}, timeout=10)
    as_string = client.account_usage_lines(orgs)
    assert as_string == as_object
    assert sorted(line["actual_usage"]["edr"] for line in as_string) == [0, 1, 2]
