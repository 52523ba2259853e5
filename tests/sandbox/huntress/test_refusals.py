"""Huntress sandbox: an account the key may not read, and `actual_usages` typed as a string (issue 22 §4).

Huntress's Swagger 2.0 definition documents only 200 and 403 for GET /v1/accounts/{account_id}/organizations,
and types `actual_usages` as `string` while its example is an object.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox import API_KEY, API_SECRET, invoice, make_scenario, organizations, usage_lines
from tests.sandbox.huntress import get_json


@pytest.fixture(scope="module")
def refusing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    own = organizations(1)
    shut = [{"id": 201, "name": "Shut Co", "key": "shut"}]
    scenario = make_scenario(own, invoices=[invoice(5001, "2026-11-01T06:00:00Z", usage_lines(own + shut))])
    scenario["huntress"]["managed_accounts"] = [
        {"id": 7, "name": "Shut Client", "subdomain": "shut", "forbidden": True, "organizations": shut},
        {"id": 8, "name": "Open Client", "subdomain": "open", "organizations": []},
    ]
    sb = start_sandbox(scenario, tmp_path_factory.mktemp("huntress-refusals"))
    yield sb
    sb.stop()


@pytest.fixture
def api(refusing: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=refusing.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client


def test_a_forbidden_account_answers_403_on_its_organizations_only(api: httpx.Client) -> None:
    refused = api.get("/v1/accounts/7/organizations")
    assert refused.status_code == 403
    assert refused.json() == {"status": 403, "error": "Not permitted to list the organizations of account 7"}
    assert get_json(api, "/v1/accounts/8/organizations")["organizations"] == []
    assert get_json(api, "/v1/accounts/7")["account"]["id"] == 7  # the account itself is listed
    assert "forbidden" not in get_json(api, "/v1/accounts/7")["account"]
    lines = get_json(api, "/v1/reseller/invoices/5001/organization_usage_line_items")
    assert {line["account"]["id"] for line in lines["organization_usage_line_items"]} == {1, 7}


def test_actual_usages_as_a_string_holding_the_object(api: httpx.Client) -> None:
    as_object = get_json(api, "/v1/organizations/101")["organization"]["actual_usages"]
    assert as_object["edr"]["billable_agents_count"] == 10
    api.post("/_sandbox/faults", json={"actual_usages_as_string": True}).raise_for_status()
    as_text = get_json(api, "/v1/organizations/101")["organization"]["actual_usages"]
    assert isinstance(as_text, str) and json.loads(as_text) == as_object
    api.post("/_sandbox/reset").raise_for_status()  # a reset ends the fault
    assert get_json(api, "/v1/organizations/101")["organization"]["actual_usages"] == as_object
