"""ConnectWise sandbox as ConnectWise really is (reference; pyconnectwise's models); the demo scenario."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox import make_scenario
from tests.sandbox.connectwise import ADDITION, all_ids, assert_error

# -- ConnectWise as it really is (reference; pyconnectwise's models) ---------------------------


def test_additions_carry_their_status_in_agreement_status_and_no_addition_status(cw: httpx.Client) -> None:
    listed = cw.get("finance/agreements/1578/additions").json()
    assert all("additionStatus" not in a for a in listed)
    assert {a["id"]: a["agreementStatus"] for a in listed} == {501: "Active", 502: "Active", 503: "Cancelled"}
    assert cw.get("finance/agreements/1578/additions", params={"fields": "id,additionStatus"}).json() == [
        {"id": 501},
        {"id": 502},
        {"id": 503},
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ("id,nosuch", [{"id": 501}, {"id": 502}, {"id": 503}]),  # the unknown name is ignored
        ("*", [{"id": 501}, {"id": 502}, {"id": 503}]),  # as ConnectWise 2018.4 answered fields=*
        ("nosuch,quantity", [{"quantity": 38}, {"quantity": 12}, {"quantity": 30}]),
    ],
)
def test_unknown_fields_names_are_ignored_not_400(cw: httpx.Client, fields: str, expected: list) -> None:
    resp = cw.get("finance/agreements/1578/additions", params={"fields": fields})
    assert resp.status_code == 200, resp.text
    assert resp.json() == expected
    assert cw.get("company/companies/1003", params={"fields": "nosuch"}).json() == {"id": 1003}


@pytest.mark.parametrize(
    "accept",
    [
        "application/vnd.connectwise.com+json; version=2025.1",
        "application/vnd.connectwise.com+json; version=2019.4",
        "application/vnd.connectwise.com+json; version=2025.16",
        "application/vnd.connectwise.com+json",
        "application/json",
        "*/*",
    ],
)
def test_any_release_version_and_plain_json_are_served(cw: httpx.Client, accept: str) -> None:
    resp = cw.get("finance/agreements/1578/additions/501", headers={"Accept": accept})
    assert resp.status_code == 200 and resp.json()["quantity"] == 38


@pytest.mark.parametrize("version", ["latest", "v2025.1", "2025", "2025.1.0", "25.1"])
def test_a_version_that_is_no_release_number_is_400(cw: httpx.Client, version: str) -> None:
    accept = f"application/vnd.connectwise.com+json; version={version}"
    body = assert_error(
        cw.get("company/companies", headers={"Accept": accept}), 400, "InvalidObject", "InvalidVersion"
    )
    assert body["errors"][0]["field"] == "version"


def test_forward_only_single_page_still_carries_a_link_header(fwd: httpx.Client) -> None:
    resp = fwd.get("finance/agreements/1578/additions", params={"pageSize": 1000})
    assert len(resp.json()) == 3
    assert resp.headers["link"] == "" and resp.links == {}
    assert "link" not in fwd.get("finance/agreements/1578/additions", headers={"pagination-type": ""}).headers


def test_injected_409_reaches_writes_in_the_connectwise_error_shape(
    sandbox: Sandbox, writes: httpx.Client
) -> None:
    admin = sandbox.connectwise_url + "/_sandbox"
    httpx.post(f"{admin}/faults", json={"status_rate": {"409": 1.0}}).raise_for_status()
    try:
        resp = writes.patch(ADDITION, json=[{"op": "replace", "path": "quantity", "value": 40}])
        assert_error(resp, 409, "Conflict")
        counted = httpx.get(f"{admin}/requests").json()["by_route_status"]
        assert counted["PATCH /v4_6_release/apis/3.0/finance/agreements/{id}/additions/{additionId}"] == {
            "409": 1
        }
    finally:
        httpx.post(f"{admin}/faults", json={}).raise_for_status()
    assert writes.get(ADDITION).json()["quantity"] == 38  # the refused write changed nothing


SMALL = "/v4_6_release/apis/3.0/finance/agreements"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """The shared test scenario with the options only a scenario can set."""
    data = make_scenario(1)
    section = data["connectwise"]
    section["bad_credentials_status"] = 404
    section["catalog"][0]["price"] = 6.5
    agreement = section["agreements"][0]
    agreement["additions"] += [
        {"id": 502, "product_id": 752, "quantity": 1, "unit_price": 5.25, "unitPrice": 9},
        {
            "id": 503,
            "product_id": 752,
            "quantity": 2,
            "additionStatus": "Inactive",
            "agreementStatus": "Active",
        },
        {
            "id": 504,
            "product_id": 752,
            "quantity": 3,
            "additionStatus": "Active",
            "agreementStatus": "Expired",
        },
        {"id": 505, "product_id": 752, "quantity": 4, "effectiveDate": None},
    ]
    section["agreements"].append(
        {
            "id": 1579,
            "name": "Open start",
            "company_id": 250,
            "startDate": None,
            "additions": [{"id": 506, "product_id": 752, "quantity": 5}],
        }
    )
    sb = start_sandbox(data, tmp_path_factory.mktemp("cw-small"))
    yield sb
    assert sb.stop() == 0


def _small(sb: Sandbox, path: str, **kwargs: Any) -> httpx.Response:
    cw_section = sb.scenario["connectwise"]
    return httpx.get(
        f"{sb.connectwise_url}{SMALL}{path}",
        timeout=30,
        headers={"clientId": cw_section["client_id"]},
        auth=(f"{cw_section['company_id']}+{cw_section['public_key']}", cw_section["private_key"]),
        **kwargs,
    )


def test_scenario_statuses_unit_prices_and_missing_dates(small: Sandbox) -> None:
    adds = {a["id"]: a for a in _small(small, "/1578/additions").json()}
    assert all("additionStatus" not in a for a in adds.values())
    assert {i: a["agreementStatus"] for i, a in adds.items()} == {
        501: "Active",
        502: "Active",
        503: "Inactive",
        504: "Expired",
        505: "Active",
    }
    # unitPrice: the scenario's `unit_price` (docs/contract.md §5), else its `unitPrice`, else the item's price.
    assert {i: a["unitPrice"] for i, a in adds.items()} == {501: 6.5, 502: 5.25, 503: 6.5, 504: 6.5, 505: 6.5}
    assert adds[502]["extPrice"] == 5.25
    # effectiveDate and cancelledDate are optional: an explicit null is served as an absent field.
    assert "effectiveDate" not in adds[505] and "cancelledDate" not in adds[505]
    assert "effectiveDate" in adds[501]
    assert "startDate" not in _small(small, "/1579").json()
    assert "effectiveDate" not in _small(small, "/1579/additions/506").json()


def test_bad_credentials_can_be_a_404_that_names_nothing(small: Sandbox) -> None:
    cw_section = small.scenario["connectwise"]
    for auth in [
        (f"{cw_section['company_id']}+{cw_section['public_key']}", "wrong-private"),
        (f"othercompany+{cw_section['public_key']}", cw_section["private_key"]),
    ]:
        resp = httpx.get(
            f"{small.connectwise_url}{SMALL}", auth=auth, headers={"clientId": cw_section["client_id"]}
        )
        body = assert_error(resp, 404, "NotFound")
        assert "wrong-private" not in resp.text and "othercompany" not in resp.text
        assert "credential" not in body["message"].lower()
    assert _small(small, "").status_code == 200


# -- the real fixture on the demo scenario ----------------------------------------------------


def test_demo_scenario_serves_a_full_sync_read(sandbox_factory: Callable[..., Sandbox]) -> None:
    sb = sandbox_factory()
    cw_section = sb.scenario["connectwise"]
    info = httpx.get(f"{sb.connectwise_url}/login/companyinfo/{cw_section['company_id']}").json()
    with httpx.Client(
        base_url=f"{sb.connectwise_url}/{info['Codebase']}apis/3.0/",
        auth=(f"{cw_section['company_id']}+{cw_section['public_key']}", cw_section["private_key"]),
        headers={"clientId": cw_section["client_id"], "pagination-type": "forward-only"},
    ) as c:
        agreements = all_ids(
            c, "finance/agreements", conditions='agreementStatus = "Active" and cancelledFlag = false'
        )
        expected = {
            a["id"]
            for a in cw_section["agreements"]
            if a.get("agreementStatus", "Active") == "Active" and not a.get("cancelledFlag", False)
        }
        assert set(agreements) == expected
        total = 0
        for agreement_id in agreements[:50]:
            rows = c.get(
                f"finance/agreements/{agreement_id}/additions",
                params={
                    "pageSize": 1000,
                    "conditions": 'product/identifier in ("HUNTRESS-EDR","HUNTRESS-ITDR")',
                },
            )
            assert rows.status_code == 200
            total += len(rows.json())
        assert total > 0
