"""Huntress sandbox: every route's shape against the spec, derived values, the admin state."""

from __future__ import annotations

import httpx
import pytest

from tests.sandbox.huntress import ODD_NAMES, assert_matches_spec, get_json, rich_scenario, walk

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


# --- admin state ------------------------------------------------------------------------------------------


def test_state_holds_the_served_data(api: httpx.Client) -> None:
    state = get_json(api, "/_sandbox/state")
    assert state["account"]["id"] == 1
    assert [org["id"] for org in state["organizations"]] == list(range(101, 124))
    assert "actual_usages" in state["organizations"][0]
    inv = next(i for i in state["invoices"] if i["id"] == 5003)
    assert len(inv["organization_usage_line_items"]) == 24 and inv["account_usage_line_items"]
    assert state["rate_limit"] == {"limit": 100_000, "window_s": 60, "remaining": 100_000}
