"""The sandbox's Huntress API over real HTTP: shapes (checked against the OpenAPI spec), paging,
filters, auth, 404s and the sliding-window rate limit."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox import API_KEY, API_SECRET, invoice, make_scenario, organizations, usage_lines

# A copy of ../shared/reference/huntress-openapi.json (captured July 2026), so a clone tests alone.
SPEC_PATH = Path(__file__).parent / "data" / "huntress-openapi.json"
SERVED_DEFINITIONS = (
    "Account",
    "Invoice",
    "Pagination",
    "Organization",
    "OrganizationWithActualProductUsages",
    "OrganizationUsageLineItem",
    "AccountUsageLineItem",
)
ODD_NAMES = ["Café Ünïcødé 株式会社 🚀", "<script>alert('x')</script> & \"Sons\"", "  Padded   Name  "]
BAD_USAGE = ["abc", -5, 2.5, None, 10**20, True, {"nested": 1}, [1, 2]]


# --- the OpenAPI spec, normalized for validation (the choices are documented in docs/sandbox.md) -------


def _normalize(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _normalize(v) for k, v in node.items() if k != "example"}
        if out.get("type") == "Object":  # the spec's capital-O typo for nested objects
            out["type"] = "object"
        return out
    if isinstance(node, list):
        return [_normalize(v) for v in node]
    return node


@cache
def _spec() -> tuple[dict[str, Any], dict[str, Any]]:
    raw = json.loads(SPEC_PATH.read_text(encoding="utf-8"))
    defs = _normalize(raw["definitions"])
    # Typed "string" in the spec, but its example (and the real API) is an object.
    defs["OrganizationWithActualProductUsages"]["properties"]["actual_usages"]["type"] = "object"
    for name in SERVED_DEFINITIONS:
        definition = defs[name]
        # Strict on purpose: the sandbox sends no field the spec does not name. The spec requires three
        # fields it never describes (microsoft_365_tenant_id, ...): they are allowed with any type.
        for field in definition.get("required", []):
            definition["properties"].setdefault(field, {})
        definition["additionalProperties"] = False
    return raw["paths"], defs


def assert_matches_spec(path: str, body: Any) -> None:
    paths, defs = _spec()
    schema = _normalize(paths[path]["get"]["responses"]["200"]["schema"])
    schema["additionalProperties"] = False
    schema.setdefault("required", list(schema["properties"]))
    validator = jsonschema.Draft4Validator(
        {**schema, "definitions": defs}, format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(body), key=jsonschema.exceptions.relevance)
    assert not errors, f"{path}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


# --- the scenario served by most tests -------------------------------------------------------------------


def rich_scenario() -> dict[str, Any]:
    orgs = organizations(23)
    for org, name in zip(orgs[3:6], ODD_NAMES, strict=True):
        org["name"] = name
    orgs[0]["actual_usages"] = {"edr": {"billable_agents_count": 7}, "sat": {"learners_count": 3}}
    orgs[1].update(created_at="2024-03-05T10:00:00+02:00", updated_at="2026-01-02T03:04:05Z")
    lines = usage_lines(orgs)
    bad_lines = copy.deepcopy(lines)
    for line, bad in zip(bad_lines[6:], BAD_USAGE, strict=False):
        line["actual_usage"]["edr"] = bad
    del bad_lines[-1]["actual_usage"]["sat"]
    bad_lines[0]["id"] = 9001
    bad_lines.append({"organization_id": 999, "organization_name": "Deleted Org", "actual_usage": {"edr": 1}})
    return make_scenario(
        orgs,
        invoices=[
            invoice(5001, "2026-09-01T06:00:00Z", lines[:5], period_start="2026-08-01T00:00:00Z"),
            invoice(
                5002, "2026-10-01T06:00:00Z", lines[:5], status="open", updated_at="2026-10-05T00:00:00Z"
            ),
            invoice(
                5003,
                "2026-11-01T06:00:00Z",
                bad_lines,
                period_start="2026-10-01T00:00:00Z",
                period_end="2026-11-01T00:00:00Z",
            ),
            invoice(
                5004, "2026-08-15T09:30:00Z", [], status="draft", quantity=12, amount=4321, receipt="r://x"
            ),
        ],
    ) | {"meta": {"note": "test scenario"}}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(rich_scenario(), tmp_path_factory.mktemp("huntress"))
    yield sb
    sb.stop()


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as client:
        client.post("/_sandbox/reset").raise_for_status()
        yield client


def get_json(api: httpx.Client, url: str, **params: Any) -> dict[str, Any]:
    response = api.get(url, params=params or None)  # httpx drops a URL's own query when given params={}
    assert response.status_code == 200, response.text
    return response.json()


def walk(api: httpx.Client, url: str, plural: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow next_page_url to the end; returns the items and the number of pages."""
    body = get_json(api, url, **params)
    items, pages = list(body[plural]), 1
    while "next_page_url" in body["pagination"]:
        assert body["pagination"]["next_page_url"].startswith(str(api.base_url).rstrip("/") + "/v1/")
        body = get_json(api, body["pagination"]["next_page_url"])
        items += body[plural]
        pages += 1
    assert body["pagination"] == {}
    return items, pages


# --- shapes ------------------------------------------------------------------------------------------------


ROUTES = [
    ("/v1/account", "/v1/account"),
    ("/v1/organizations", "/v1/organizations"),
    ("/v1/organizations/{id}", "/v1/organizations/101"),
    ("/v1/organizations/{id}", "/v1/organizations/107"),
    ("/v1/invoices", "/v1/invoices?limit=500"),
    ("/v1/invoices/{id}", "/v1/invoices/5004"),
    ("/v1/reseller/invoices", "/v1/reseller/invoices"),
    ("/v1/reseller/invoices/{id}", "/v1/reseller/invoices/5003"),
    (
        "/v1/reseller/invoices/{id}/organization_usage_line_items",
        "/v1/reseller/invoices/5003/organization_usage_line_items?limit=500",
    ),
    (
        "/v1/reseller/invoices/{id}/account_usage_line_items",
        "/v1/reseller/invoices/5003/account_usage_line_items",
    ),
]


@pytest.mark.parametrize(("template", "url"), ROUTES, ids=[url for _, url in ROUTES])
def test_every_route_answers_the_spec_shape(api: httpx.Client, template: str, url: str) -> None:
    response = api.get(url)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert_matches_spec(template, response.json())


def test_account(api: httpx.Client) -> None:
    account = get_json(api, "/v1/account")["account"]
    assert account["id"] == 1 and account["name"] == "Demo MSP" and account["subdomain"] == "demomsp"
    assert account["status"] == "enabled"


def test_invoice_fields_and_defaults(api: httpx.Client) -> None:
    first = get_json(api, "/v1/invoices/5001")["invoice"]
    assert first == {
        "id": 5001,
        "amount": (10 + 20 + 30 + 40 + 50) * 300,  # the documented $3.00 per agent, in cents
        "created_at": "2026-09-01T06:00:00Z",
        "currency_type": "usd",
        "plan": "Huntress Partner",
        "quantity": 150,
        "receipt": "https://pay.stripe.com/invoice/invst_sandbox_5001",
        "status": "paid",
        "has_usage": True,
        "updated_at": "2026-09-01T06:00:00Z",
    }
    draft = get_json(api, "/v1/reseller/invoices/5004")["invoice"]
    assert (draft["quantity"], draft["amount"], draft["receipt"], draft["has_usage"]) == (
        12,
        4321,
        "r://x",
        False,
    )
    assert get_json(api, "/v1/invoices/5002")["invoice"]["updated_at"] == "2026-10-05T00:00:00Z"
    # Only plain non-negative integer edr values count toward the quantity.
    bad = get_json(api, "/v1/invoices/5003")["invoice"]
    lines = rich_scenario()["huntress"]["invoices"][2]["lines"]
    valid = [
        u["edr"]
        for u in (line["actual_usage"] for line in lines)
        if type(u.get("edr")) is int and u["edr"] >= 0
    ]
    assert bad["quantity"] == sum(valid)


def test_organization_usage_lines_pass_values_and_names_verbatim(api: httpx.Client) -> None:
    items, _ = walk(
        api, "/v1/reseller/invoices/5003/organization_usage_line_items", "organization_usage_line_items"
    )
    source = rich_scenario()["huntress"]["invoices"][2]["lines"]
    assert [item["actual_usage"] for item in items] == [line["actual_usage"] for line in source]
    assert [item["organization"]["id"] for item in items] == [line["organization_id"] for line in source]
    names = {item["organization"]["name"] for item in items}
    assert set(ODD_NAMES) <= names and "Deleted Org" in names
    assert items[0]["id"] == 9001 and len({item["id"] for item in items}) == len(items)
    assert {(i["period_start"], i["period_end"]) for i in items} == {
        ("2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z")
    }
    assert items[0]["account"] == {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"}
    # An invoice without a period gets the month that ends when it was created.
    first = get_json(api, "/v1/reseller/invoices/5002/organization_usage_line_items")
    line = first["organization_usage_line_items"][0]
    assert (line["period_start"], line["period_end"]) == ("2026-09-01T06:00:00Z", "2026-10-01T06:00:00Z")


def test_account_usage_lines_one_per_product(api: httpx.Client) -> None:
    items = get_json(api, "/v1/reseller/invoices/5001/account_usage_line_items")["account_usage_line_items"]
    assert [i["product"] for i in items] == ["edr", "itdr", "sat", "siem"]
    edr = items[0]
    assert edr["usage"] == {"billable": 150, "non_billable": 0, "actual": 150}
    assert edr["subscription"]["minimum"] == 0
    assert edr["period_start"] == "2026-08-01 00:00:00 UTC" and edr["period_end"] == "2026-09-01 06:00:00 UTC"
    assert (
        get_json(api, "/v1/reseller/invoices/5004/account_usage_line_items")["account_usage_line_items"] == []
    )


def test_organizations_list_and_detail(api: httpx.Client) -> None:
    orgs, _ = walk(api, "/v1/organizations", "organizations", limit=500)
    assert len(orgs) == 23 and all("actual_usages" not in org for org in orgs)
    by_id = {org["id"]: org for org in orgs}
    # Counts come from the org's line on the newest invoice (5003).
    counts = ("agents_count", "billable_identity_count", "sat_learner_count")
    assert [by_id[103][count] for count in counts] == [30, 3, 6]
    assert "agents_count" not in by_id[107]  # its newest edr is "abc": no count is invented
    assert (
        by_id[102]["created_at"] == "2024-03-05T08:00:00Z"
        and by_id[102]["updated_at"] == "2026-01-02T03:04:05Z"
    )
    assert by_id[101]["account_id"] == 1 and by_id[101]["key"] == "org1"
    explicit = get_json(api, "/v1/organizations/101")["organization"]
    assert explicit["actual_usages"] == {"edr": {"billable_agents_count": 7}, "sat": {"learners_count": 3}}
    derived = get_json(api, "/v1/organizations/103")["organization"]["actual_usages"]
    assert derived["edr"]["billable_agents_count"] == 30 and derived["sat"] == {"learners_count": 6}
    assert derived["itdr"][0]["billable_identities_count"] == 3
    assert derived["siem"]["billable_log_sources_count"] == 0
    assert (
        get_json(api, "/v1/organizations/107")["organization"]["actual_usages"]["edr"][
            "billable_agents_count"
        ]
        == "abc"
    )


# --- paging ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, None, 23, 500])
def test_paging_walks_to_the_last_page(api: httpx.Client, limit: int | None) -> None:
    params = {"limit": limit} if limit else {}
    orgs, pages = walk(api, "/v1/organizations", "organizations", **params)
    assert [org["id"] for org in orgs] == list(range(123, 100, -1))  # default sort: id desc
    assert pages == -(-23 // (limit or 10))


def test_next_page_url_keeps_the_other_parameters(api: httpx.Client) -> None:
    body = get_json(api, "/v1/organizations", limit=5, sort_direction="asc", sort_field="name")
    url = httpx.URL(body["pagination"]["next_page_url"])
    assert (
        url.params["limit"] == "5"
        and url.params["sort_direction"] == "asc"
        and url.params["sort_field"] == "name"
    )
    assert url.params["page_token"] == body["pagination"]["next_page_token"]
    names, _ = walk(
        api, "/v1/organizations", "organizations", limit=5, sort_direction="asc", sort_field="name"
    )
    assert [o["name"] for o in names] == sorted(
        o["name"] for o in rich_scenario()["huntress"]["organizations"]
    )
    # The token alone (with the same query) gives the same page as the URL.
    by_token = get_json(
        api,
        "/v1/organizations",
        limit=5,
        sort_direction="asc",
        sort_field="name",
        page_token=body["pagination"]["next_page_token"],
    )
    assert by_token == get_json(api, body["pagination"]["next_page_url"])


def test_line_items_page_too(api: httpx.Client) -> None:
    items, pages = walk(
        api, "/v1/reseller/invoices/5003/organization_usage_line_items", "organization_usage_line_items"
    )
    assert len(items) == 24 and pages == 3


@pytest.mark.parametrize("limit", ["0", "501", "-1", "abc", "", "2.5"])
def test_limit_out_of_range_is_400(api: httpx.Client, limit: str) -> None:
    response = api.get("/v1/organizations", params={"limit": limit})
    assert response.status_code == 400 and "limit" in response.json()["error"]


def test_limit_bounds_are_accepted(api: httpx.Client) -> None:
    assert len(get_json(api, "/v1/organizations", limit=1)["organizations"]) == 1
    assert len(get_json(api, "/v1/organizations", limit=500)["organizations"]) == 23


def test_bad_page_tokens_are_400(api: httpx.Client) -> None:
    invoices_token = get_json(api, "/v1/invoices", limit=1)["pagination"]["next_page_token"]
    forged = base64.urlsafe_b64encode(b"organizations:-3").decode().rstrip("=")
    for token in ["garbage!", "Zm9v", invoices_token, forged, "x" * 300]:
        response = api.get("/v1/organizations", params={"page_token": token})
        assert response.status_code == 400, token
        assert response.json()["error"] == "page_token is invalid"


# --- filters and sort -------------------------------------------------------------------------------------


def ids(body: dict[str, Any], plural: str) -> list[int]:
    return [item["id"] for item in body[plural]]


def test_invoice_filters_and_sort(api: httpx.Client) -> None:
    assert ids(get_json(api, "/v1/invoices"), "invoices") == [5004, 5003, 5002, 5001]
    assert ids(get_json(api, "/v1/invoices", status="paid"), "invoices") == [5003, 5001]
    assert ids(get_json(api, "/v1/invoices", has_usage="false"), "invoices") == [5004]
    assert ids(get_json(api, "/v1/invoices", has_usage="true", status="open"), "invoices") == [5002]
    by_created = get_json(api, "/v1/invoices", sort_field="created_at", sort_direction="asc")
    assert ids(by_created, "invoices") == [5004, 5001, 5002, 5003]
    by_status = get_json(api, "/v1/invoices", sort_field="status", sort_direction="asc")
    assert [inv["status"] for inv in by_status["invoices"]] == ["draft", "open", "paid", "paid"]
    for bad in [
        {"status": "lost"},
        {"sort_field": "amount"},
        {"sort_direction": "up"},
        {"has_usage": "maybe"},
    ]:
        response = api.get("/v1/invoices", params=bad)
        assert response.status_code == 400 and next(iter(bad)) in response.json()["error"], bad


def test_reseller_invoices_filter_status_only(api: httpx.Client) -> None:
    assert ids(get_json(api, "/v1/reseller/invoices"), "invoices") == [5004, 5003, 5002, 5001]
    assert ids(get_json(api, "/v1/reseller/invoices", status="draft"), "invoices") == [5004]
    # Parameters the spec does not list for this route are ignored, as the real API ignores unknown ones.
    assert ids(get_json(api, "/v1/reseller/invoices", sort_field="bogus"), "invoices") == [
        5004,
        5003,
        5002,
        5001,
    ]
    assert api.get("/v1/reseller/invoices", params={"status": "nope"}).status_code == 400


def test_organization_filters_and_sort(api: httpx.Client) -> None:
    assert ids(get_json(api, "/v1/organizations", key="org7"), "organizations") == [107]
    assert ids(get_json(api, "/v1/organizations", name=ODD_NAMES[0]), "organizations") == [104]
    assert get_json(api, "/v1/organizations", name="org7")["organizations"] == []
    by_key = get_json(api, "/v1/organizations", sort_field="key", sort_direction="asc", limit=3)
    assert [o["key"] for o in by_key["organizations"]] == ["org1", "org10", "org11"]
    assert ids(get_json(api, "/v1/organizations", sort_direction="asc", limit=2), "organizations") == [
        101,
        102,
    ]
    assert api.get("/v1/organizations", params={"sort_field": "agents_count"}).status_code == 400


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


# --- rate limit ---------------------------------------------------------------------------------------------


def test_sliding_window_rate_limit(sandbox_factory: Any) -> None:
    window = 1.0
    sb = sandbox_factory(make_scenario(rate_limit_per_minute=5, rate_limit_window_s=window))
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET)) as api:
        first = time.monotonic()
        remaining = [api.get("/v1/account").headers["x-huntress-api-call-remaining"] for _ in range(5)]
        assert remaining == ["4", "3", "2", "1", "0"]
        refused = api.get("/v1/account")
        assert refused.status_code == 429 and refused.json()["status"] == 429
        assert refused.headers["x-huntress-api-call-remaining"] == "0"
        # Not promised by Huntress: clients must wait out the window.
        assert "retry-after" not in refused.headers
        assert api.get("/_sandbox/state").status_code == 200  # admin routes are outside the limit
        time.sleep(max(0.0, first + window - time.monotonic()) + 0.05)
        assert api.get("/v1/account").status_code == 200
        log = api.get("/_sandbox/requests", params={"log": 1}).json()["log"]
    admitted = [e["time"] for e in log if e["status"] == "200"]
    assert len(admitted) == 6 and [e["status"] for e in log].count("429") == 1
    # No rolling window ever held more than the limit.
    assert all(sum(1 for t in admitted if start <= t < start + window) <= 5 for start in admitted)


def test_rate_limit_retry_after_can_be_switched_on(sandbox_factory: Any) -> None:
    sb = sandbox_factory(
        make_scenario(rate_limit_per_minute=1, rate_limit_window_s=30, rate_limit_retry_after=True)
    )
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET)) as api:
        assert api.get("/v1/account").status_code == 200
        refused = api.get("/v1/account")
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 30
        # Refused requests do not extend the window, and reset starts a fresh one.
        assert api.post("/_sandbox/reset").status_code == 200
        assert api.get("/v1/account").status_code == 200


# --- admin state ------------------------------------------------------------------------------------------


def test_state_holds_the_served_data(api: httpx.Client) -> None:
    state = get_json(api, "/_sandbox/state")
    assert state["account"]["id"] == 1
    assert [org["id"] for org in state["organizations"]] == list(range(101, 124))
    assert "actual_usages" in state["organizations"][0]
    inv = next(i for i in state["invoices"] if i["id"] == 5003)
    assert len(inv["organization_usage_line_items"]) == 24 and inv["account_usage_line_items"]
    assert state["rate_limit"] == {"limit": 100_000, "window_s": 60, "remaining": 100_000}


# --- managed accounts (CONTRACTS §5; the spec's "Reseller" routes) -------------------------------------------


def managed_scenario() -> dict[str, Any]:
    own = organizations(3)  # 101..103, keys org1..org3, of the own account 1
    west = [{"id": 201, "name": "Acme West", "key": "acme"}, {"id": 202, "name": "Org One Elsewhere", "key": "org1"},
            {"id": 203, "name": "Idle", "key": "idle"}]
    north = [{"id": 301, "name": "North Co", "key": "north", "created_at": "2025-06-01T00:00:00Z"}]
    lines = usage_lines([own[0], west[0], west[1], north[0]])
    lines.append({"organization_id": 999, "organization_name": "Deleted Org", "actual_usage": {"edr": 1}})
    scenario = make_scenario(own, invoices=[invoice(5001, "2026-11-01T06:00:00Z", lines)])
    scenario["huntress"]["managed_accounts"] = [
        {"id": 7, "name": "West Client", "subdomain": "westclient", "organizations": west},
        {"id": 8, "name": "North Client", "subdomain": "northclient", "status": "disabled",
         "support_type": "huntress_supported", "organizations": north},
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
    with httpx.Client(base_url=managed_sandbox.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as client:
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
        "West Client", "westclient", "enabled", "partner_supported")
    assert ids(get_json(managed, "/v1/accounts", status="disabled"), "accounts") == [8]
    assert ids(get_json(managed, "/v1/accounts", subdomain="westclient"), "accounts") == [7]
    assert ids(get_json(managed, "/v1/accounts", name="North Client"), "accounts") == [8]
    by_name = get_json(managed, "/v1/accounts", sort_field="name", sort_direction="asc")
    assert ids(by_name, "accounts") == [9, 8, 7]
    assert ids(get_json(managed, "/v1/accounts", sort_field="created_at", sort_direction="asc"), "accounts") == [7, 8, 9]
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
    for url in ["/v1/accounts/1/organizations", "/v1/accounts/4242/organizations", "/v1/accounts/1",
                "/v1/accounts/4242"]:
        response = managed.get(url)
        assert response.status_code == 404 and response.json()["status"] == 404, url
    response = managed.get("/v1/accounts/abc/organizations")
    assert response.status_code == 400 and "account_id" in response.json()["error"]


def test_invoice_lines_name_each_organizations_own_account(managed: httpx.Client) -> None:
    items = get_json(managed, "/v1/reseller/invoices/5001/organization_usage_line_items")[
        "organization_usage_line_items"]
    account = {item["organization"]["id"]: item["account"] for item in items}
    own = {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"}
    assert account == {101: own, 201: {"id": 7, "name": "West Client", "subdomain": "westclient"},
                       202: {"id": 7, "name": "West Client", "subdomain": "westclient"},
                       301: {"id": 8, "name": "North Client", "subdomain": "northclient"}, 999: own}
    state = get_json(managed, "/_sandbox/state")
    assert [a["id"] for a in state["managed_accounts"]] == [7, 8, 9]
    assert "actual_usages" in state["managed_accounts"][0]["organizations"][0]


def test_scenario_managed_accounts_are_checked() -> None:
    from billing_sandbox.scenario import ScenarioError, validate_scenario

    validate_scenario(managed_scenario())  # the JSON Schema accepts managed_accounts
    for change, problem in [
        (lambda h: h["managed_accounts"][0]["organizations"].append({"id": 101, "name": "X", "key": "x"}),
         "huntress.managed_accounts[0].organizations[3].id: 101 is not unique"),
        (lambda h: h["managed_accounts"].append({"id": 1, "name": "Me", "subdomain": "me"}),
         "huntress.managed_accounts[3].id: 1 is not unique"),
        (lambda h: h["managed_accounts"][0].update(nmae="typo"), "Additional properties are not allowed"),
    ]:
        scenario = managed_scenario()
        change(scenario["huntress"])
        with pytest.raises(ScenarioError) as err:
            validate_scenario(scenario)
        assert any(problem in p for p in err.value.problems), err.value.problems


# --- invoice statuses -----------------------------------------------------------------------------------------


def test_every_invoice_status_of_the_spec_is_served_and_filtered(sandbox_factory: Any) -> None:
    params = _spec()[0]["/v1/reseller/invoices"]["get"]["parameters"]
    statuses = next(p["enum"] for p in params if p["name"] == "status")
    assert len(statuses) == 8
    orgs = organizations(1)
    invoices = [invoice(6000 + i, f"2026-11-{i + 1:02d}T06:00:00Z", usage_lines(orgs), status=status)
                for i, status in enumerate(statuses)]
    sb = sandbox_factory(make_scenario(orgs, invoices=invoices))
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as api:
        body = get_json(api, "/v1/reseller/invoices")
        assert_matches_spec("/v1/reseller/invoices", body)
        assert sorted(i["status"] for i in body["invoices"]) == sorted(statuses)
        for i, status in enumerate(statuses):
            assert ids(get_json(api, "/v1/reseller/invoices", status=status), "invoices") == [6000 + i]
            assert ids(get_json(api, "/v1/invoices", status=status), "invoices") == [6000 + i]


# --- rate-limit faults: bare 429s, another tool on the same key -------------------------------------------------


def test_rate_limit_headers_false_leaves_429s_bare(sandbox_factory: Any) -> None:
    sb = sandbox_factory(make_scenario(rate_limit_per_minute=2, rate_limit_window_s=60, rate_limit_retry_after=True))
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as api:
        effective = api.post("/_sandbox/faults", json={"rate_limit_headers": False}).json()
        assert (effective["rate_limit_headers"], effective["foreign_requests_per_minute"]) == (False, 0)
        ok = api.get("/v1/account")
        assert ok.status_code == 200 and ok.headers["x-huntress-api-call-remaining"] == "1"  # 200s keep them
        api.get("/v1/account")
        refused = api.get("/v1/account")
        assert refused.status_code == 429 and refused.json()["status"] == 429
        assert not [h for h in refused.headers if h.startswith("x-huntress") or h == "retry-after"]
        # Injected 429s are bare too; with the fault cleared, rate-limit 429s carry the headers again.
        api.post("/_sandbox/faults", json={"rate_limit_headers": False, "status_rate": {"429": 1.0}})
        assert "retry-after" not in api.get("/v1/account").headers
        api.post("/_sandbox/faults", json={}).raise_for_status()
        again = api.get("/v1/account")
        assert again.status_code == 429 and "x-huntress-api-call-limit" in again.headers
        assert "retry-after" in again.headers


def test_foreign_requests_fill_the_same_window() -> None:
    from billing_sandbox.huntress import SlidingWindow

    now = [0.0]
    window = SlidingWindow(10, 10, clock=lambda: now[0])
    window.set_foreign(60)  # one a second, from t=1
    now[0] = 3.5
    assert window.remaining() == 7 and window.admit()  # phantoms at 1, 2, 3; ours at 3.5
    now[0] = 10.5
    assert window.remaining() == 0 and not window.admit()  # 1..10 and ours: full
    now[0] = 11.2  # the phantom at 1 left at 11, and the one at 11 took its slot (the one at 10 was refused)
    assert window.remaining() == 0
    now[0] = 13.6  # phantoms at 12 and 13 took the slots of 2 and 3; ours (3.5) has left
    assert window.remaining() == 1
    window.set_foreign(0)
    now[0] = 15.0  # 4 and 5 left, nothing came: 6..9, 11..13 remain
    assert window.remaining() == 3 and window.admit()
    # After a long quiet spell only a window's worth of phantoms is replayed.
    window.set_foreign(600)
    now[0] = 10_000.0
    assert window.remaining() == 0


def test_foreign_requests_over_http_and_refused_keys(sandbox_factory: Any) -> None:
    sb = sandbox_factory(make_scenario(rate_limit_per_minute=5, rate_limit_window_s=60))
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as api:
        api.post("/_sandbox/faults", json={"foreign_requests_per_minute": 6000}).raise_for_status()  # one per 10 ms
        time.sleep(0.2)
        assert api.get("/v1/account").status_code == 429  # another tool took the whole window
        assert get_json(api, "/_sandbox/state")["rate_limit"]["remaining"] == 0
        assert api.get("/_sandbox/requests").json()["total"] == 1  # phantoms are not requests it served
        assert api.post("/_sandbox/faults", json={"foreign_requests_per_minute": -1}).status_code == 400
        api.post("/_sandbox/reset").raise_for_status()
        assert api.get("/v1/account").status_code == 200
    # Only the Huntress server takes these keys.
    for body in ({"rate_limit_headers": False}, {"foreign_requests_per_minute": 1}):
        assert httpx.post(f"{sb.connectwise_url}/_sandbox/faults", json=body, timeout=10).status_code == 400
