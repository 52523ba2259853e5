"""The Preflight view of the runs page (issue 22 §3): a reader's page that runs the same read-only
checks as `python -m billing_sync preflight` for the page's tenant, against the sandbox."""

from __future__ import annotations

import json

import httpx

from tests.helpers.review_app import App
from tests.helpers.sandbox_setup import HUNTRESS_ROLE, ROLE_VARIABLE, role_scenario, use_connections


def test_the_runs_page_offers_preflight_and_it_reports_what_to_change(app: App, sandbox_factory, monkeypatch):  # noqa: F811
    role = json.loads(json.dumps(HUNTRESS_ROLE))
    role["levels"]["finance/agreements"]["edit"] = "none"
    sb = sandbox_factory(role_scenario(role))
    use_connections(monkeypatch, sb)
    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", json.dumps(ROLE_VARIABLE))
    monkeypatch.delenv("BILLING_SYNC_TENANTS_FILE", raising=False)

    assert 'data-testid="preflight-link"' in app.get("/runs").text
    assert app.get("/runs/preflight", headers={}).status_code == 401  # a reader's page: sign in first
    idle = app.get("/runs/preflight")
    assert idle.status_code == 200 and 'data-testid="preflight"' not in idle.text  # nothing runs unasked
    assert httpx.get(f"{sb.connectwise_url}/_sandbox/requests", timeout=10).json()["total"] == 0

    page = app.get("/runs/preflight?run=1")
    assert page.status_code == 200
    assert "Fix the lines marked fail" in page.text
    assert '<tr data-status="fail"><td>Finance → Agreements: Edit</td>' in page.text
    assert "set Finance → Agreements: Edit to All" in page.text
    assert page.text.count('data-status="fail"') == 1
    assert "hs_preflight_secret" not in page.text and "cw_private_preflight" not in page.text
    served = httpx.get(f"{sb.connectwise_url}/_sandbox/requests", timeout=10).json()["by_route"]
    assert all(route.startswith("GET") for route in served)  # read-only
