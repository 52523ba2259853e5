"""Huntress sandbox: managed accounts (docs/contract.md §5; the spec's "Reseller" routes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox import API_KEY, API_SECRET, invoice, make_scenario, organizations, usage_lines
from tests.sandbox.huntress import assert_matches_spec, get_json, ids, walk

# --- managed accounts (docs/contract.md §5; the spec's "Reseller" routes) -------------------------------------------


def managed_scenario() -> dict[str, Any]:
    own = organizations(3)  # 101..103, keys org1..org3, of the own account 1
    west = [
        {"id": 201, "name": "Acme West", "key": "acme"},
        {"id": 202, "name": "Org One Elsewhere", "key": "org1"},
        {"id": 203, "name": "Idle", "key": "idle"},
    ]
    north = [{"id": 301, "name": "North Co", "key": "north", "created_at": "2025-06-01T00:00:00Z"}]
    lines = usage_lines([own[0], west[0], west[1], north[0]])
    lines.append({"organization_id": 999, "organization_name": "Deleted Org", "actual_usage": {"edr": 1}})
    scenario = make_scenario(own, invoices=[invoice(5001, "2026-11-01T06:00:00Z", lines)])
    scenario["huntress"]["managed_accounts"] = [
        {"id": 7, "name": "West Client", "subdomain": "westclient", "organizations": west},
        {
            "id": 8,
            "name": "North Client",
            "subdomain": "northclient",
            "status": "disabled",
            "support_type": "huntress_supported",
            "organizations": north,
        },
        {"id": 9, "name": "Empty Client", "subdomain": "emptyclient"},
    ]
    return scenario


@pytest.fixture(scope="module")
def managed_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(managed_scenario(), tmp_path_factory.mktemp("huntress-managed"))
    yield sb
    sb.stop()


@pytest.fixture
def managed(managed_sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=managed_sandbox.huntress_url, auth=(API_KEY, API_SECRET), timeout=10
    ) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client


MANAGED_ROUTES = [
    ("/v1/accounts", "/v1/accounts"),
    ("/v1/accounts/{account_id}", "/v1/accounts/8"),
    ("/v1/accounts/{account_id}/organizations", "/v1/accounts/7/organizations"),
    ("/v1/accounts/{account_id}/organizations", "/v1/accounts/9/organizations"),
    (
        "/v1/reseller/invoices/{id}/organization_usage_line_items",
        "/v1/reseller/invoices/5001/organization_usage_line_items",
    ),
]


@pytest.mark.parametrize(("template", "url"), MANAGED_ROUTES, ids=[url for _, url in MANAGED_ROUTES])
def test_managed_account_routes_answer_the_spec_shape(managed: httpx.Client, template: str, url: str) -> None:
    response = managed.get(url)
    assert response.status_code == 200, response.text
    assert_matches_spec(template, response.json())


def test_own_organizations_only_on_v1_organizations(managed: httpx.Client) -> None:
    orgs, _ = walk(managed, "/v1/organizations", "organizations", limit=500)
    assert sorted(o["id"] for o in orgs) == [101, 102, 103] and {o["account_id"] for o in orgs} == {1}
    assert managed.get("/v1/organizations/201").status_code == 404  # another account's organization


def test_accounts_lists_the_managed_accounts(managed: httpx.Client) -> None:
    accounts = get_json(managed, "/v1/accounts")["accounts"]
    assert [a["id"] for a in accounts] == [9, 8, 7]  # default sort: id desc; the own account 1 is not listed
    west = next(a for a in accounts if a["id"] == 7)
    assert (west["name"], west["subdomain"], west["status"], west["support_type"]) == (
        "West Client",
        "westclient",
        "enabled",
        "partner_supported",
    )
    assert ids(get_json(managed, "/v1/accounts", status="disabled"), "accounts") == [8]
    assert ids(get_json(managed, "/v1/accounts", subdomain="westclient"), "accounts") == [7]
    assert ids(get_json(managed, "/v1/accounts", name="North Client"), "accounts") == [8]
    by_name = get_json(managed, "/v1/accounts", sort_field="name", sort_direction="asc")
    assert ids(by_name, "accounts") == [9, 8, 7]
    assert ids(
        get_json(managed, "/v1/accounts", sort_field="created_at", sort_direction="asc"), "accounts"
    ) == [7, 8, 9]
    assert walk(managed, "/v1/accounts", "accounts", limit=1)[1] == 3
    for bad in [{"status": "active"}, {"sort_field": "status"}, {"sort_direction": "up"}, {"limit": 501}]:
        assert managed.get("/v1/accounts", params=bad).status_code == 400, bad
    assert get_json(managed, "/v1/accounts/7")["account"] == west


def test_account_organizations_page_filter_and_carry_their_account(managed: httpx.Client) -> None:
    orgs, pages = walk(managed, "/v1/accounts/7/organizations", "organizations", limit=1)
    assert [o["id"] for o in orgs] == [203, 202, 201] and pages == 3
    assert {o["account_id"] for o in orgs} == {7} and all("actual_usages" not in o for o in orgs)
    assert ids(get_json(managed, "/v1/accounts/7/organizations", key="org1"), "organizations") == [202]
    assert ids(get_json(managed, "/v1/accounts/7/organizations", name="Acme West"), "organizations") == [201]
    by_key = get_json(managed, "/v1/accounts/7/organizations", sort_field="key", sort_direction="asc")
    assert [o["key"] for o in by_key["organizations"]] == ["acme", "idle", "org1"]
    # Counts come from the organization's invoice line, as for the own account's organizations.
    assert next(o for o in orgs if o["id"] == 201)["agents_count"] == 20
    assert get_json(managed, "/v1/accounts/9/organizations") == {"organizations": [], "pagination": {}}
    # A page token of one account's list is no token of another's.
    token = get_json(managed, "/v1/accounts/7/organizations", limit=1)["pagination"]["next_page_token"]
    assert managed.get("/v1/accounts/8/organizations", params={"page_token": token}).status_code == 400


def test_accounts_these_credentials_do_not_manage_are_404(managed: httpx.Client) -> None:
    for url in [
        "/v1/accounts/1/organizations",
        "/v1/accounts/4242/organizations",
        "/v1/accounts/1",
        "/v1/accounts/4242",
    ]:
        response = managed.get(url)
        assert response.status_code == 404 and response.json()["status"] == 404, url
    response = managed.get("/v1/accounts/abc/organizations")
    assert response.status_code == 400 and "account_id" in response.json()["error"]


def test_invoice_lines_name_each_organizations_own_account(managed: httpx.Client) -> None:
    items = get_json(managed, "/v1/reseller/invoices/5001/organization_usage_line_items")[
        "organization_usage_line_items"
    ]
    account = {item["organization"]["id"]: item["account"] for item in items}
    own = {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"}
    assert account == {
        101: own,
        201: {"id": 7, "name": "West Client", "subdomain": "westclient"},
        202: {"id": 7, "name": "West Client", "subdomain": "westclient"},
        301: {"id": 8, "name": "North Client", "subdomain": "northclient"},
        999: own,
    }
    state = get_json(managed, "/_sandbox/state")
    assert [a["id"] for a in state["managed_accounts"]] == [7, 8, 9]
    assert "actual_usages" in state["managed_accounts"][0]["organizations"][0]


def test_scenario_managed_accounts_are_checked() -> None:
    from billing_sandbox.scenario import ScenarioError, validate_scenario

    validate_scenario(managed_scenario())  # the JSON Schema accepts managed_accounts
    for change, problem in [
        (
            lambda h: h["managed_accounts"][0]["organizations"].append({"id": 101, "name": "X", "key": "x"}),
            "huntress.managed_accounts[0].organizations[3].id: 101 is not unique",
        ),
        (
            lambda h: h["managed_accounts"].append({"id": 1, "name": "Me", "subdomain": "me"}),
            "huntress.managed_accounts[3].id: 1 is not unique",
        ),
        (lambda h: h["managed_accounts"][0].update(nmae="typo"), "Additional properties are not allowed"),
    ]:
        scenario = managed_scenario()
        change(scenario["huntress"])
        with pytest.raises(ScenarioError) as err:
            validate_scenario(scenario)
        assert any(problem in p for p in err.value.problems), err.value.problems
