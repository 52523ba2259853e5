"""Huntress sandbox: paging, filters and sorting, invoice statuses."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.sandbox import API_KEY, API_SECRET, invoice, make_scenario, organizations, usage_lines
from tests.sandbox.huntress import ODD_NAMES, _spec, assert_matches_spec, get_json, ids, rich_scenario, walk

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


# --- invoice statuses -----------------------------------------------------------------------------------------


def test_every_invoice_status_of_the_spec_is_served_and_filtered(sandbox_factory: Any) -> None:
    params = _spec()[0]["/v1/reseller/invoices"]["get"]["parameters"]
    statuses = next(p["enum"] for p in params if p["name"] == "status")
    assert len(statuses) == 8
    orgs = organizations(1)
    invoices = [
        invoice(6000 + i, f"2026-11-{i + 1:02d}T06:00:00Z", usage_lines(orgs), status=status)
        for i, status in enumerate(statuses)
    ]
    sb = sandbox_factory(make_scenario(orgs, invoices=invoices))
    with httpx.Client(base_url=sb.huntress_url, auth=(API_KEY, API_SECRET), timeout=10) as api:
        body = get_json(api, "/v1/reseller/invoices")
        assert_matches_spec("/v1/reseller/invoices", body)
        assert sorted(i["status"] for i in body["invoices"]) == sorted(statuses)
        for i, status in enumerate(statuses):
            assert ids(get_json(api, "/v1/reseller/invoices", status=status), "invoices") == [6000 + i]
            assert ids(get_json(api, "/v1/invoices", status=status), "invoices") == [6000 + i]
