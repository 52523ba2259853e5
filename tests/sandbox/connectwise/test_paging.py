"""ConnectWise sandbox: navigable and forward-only paging, page parameters."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.sandbox.connectwise import COMPANIES, assert_error

# -- navigable and forward-only paging -------------------------------------------------------


def _links(resp: httpx.Response) -> dict[str, dict[str, list[str]]]:
    """rel → query params of its URL (every URL absolute, on this server and path)."""
    out = {}
    for rel, link in resp.links.items():
        parts = urlsplit(link["url"])
        assert parts.scheme == "http" and parts.netloc == resp.request.url.netloc.decode()
        assert parts.path == resp.request.url.path
        out[rel] = parse_qs(parts.query)
    return out


def test_navigable_paging_walks_to_the_last_page(cw: httpx.Client) -> None:
    size = 250
    active = [c["id"] for c in COMPANIES if not c.get("deletedFlag")]
    pages = math.ceil(len(active) / size)
    params = {"pageSize": size, "conditions": "deletedFlag = false", "fields": "id,name"}
    resp = cw.get("company/companies", params=params)
    seen: list[int] = []
    page = 1
    while True:
        assert resp.status_code == 200
        records = resp.json()
        seen += [r["id"] for r in records]
        assert all(set(r) == {"id", "name"} for r in records)
        links = _links(resp)
        if page == 1:
            assert set(links) == {"next", "last"}
        elif page < pages:
            assert set(links) == {"first", "prev", "next", "last"}
            assert links["prev"]["page"] == [str(page - 1)] and links["first"]["page"] == ["1"]
        else:
            assert set(links) == {"first", "prev"}
            break
        assert links["last"]["page"] == [str(pages)]
        assert links["next"]["page"] == [str(page + 1)]
        # every other parameter is carried over as sent
        assert links["next"]["conditions"] == ["deletedFlag = false"]
        assert links["next"]["fields"] == ["id,name"] and links["next"]["pageSize"] == [str(size)]
        resp = cw.get(resp.links["next"]["url"])
        page += 1
    assert page == pages
    assert seen == sorted(active)
    assert cw.get("company/companies/count", params={"conditions": "deletedFlag = false"}).json() == {
        "count": len(active)
    }


def test_default_page_size_is_25_and_past_the_end_is_empty(cw: httpx.Client) -> None:
    first = cw.get("company/companies")
    assert [c["id"] for c in first.json()] == [c["id"] for c in COMPANIES[:25]]
    assert _links(first)["last"]["page"] == [str(math.ceil(len(COMPANIES) / 25))]
    beyond = cw.get("company/companies", params={"page": 500, "pageSize": 10})
    assert beyond.status_code == 200 and beyond.json() == []
    assert set(_links(beyond)) == {"first", "prev"}
    single = cw.get("finance/agreements/1578/additions")
    assert len(single.json()) == 3 and "link" not in single.headers


def test_forward_only_paging_follows_page_id_to_the_end(fwd: httpx.Client) -> None:
    expected = [c["id"] for c in COMPANIES if not c.get("deletedFlag")]
    params = {"pageSize": 1000, "conditions": "deletedFlag = false", "fields": "id"}
    resp = fwd.get("company/companies", params=params)
    seen: list[int] = []
    requests = 0
    while True:
        requests += 1
        assert resp.status_code == 200
        page = [r["id"] for r in resp.json()]
        seen += page
        assert "link" in resp.headers  # on every forward-only page, the last one included
        links = _links(resp)
        if not links:
            break
        assert set(links) == {"next"}
        assert links["next"]["pageId"] == [str(page[-1])]
        assert "page" not in links["next"]
        assert links["next"]["conditions"] == ["deletedFlag = false"]
        resp = fwd.get(resp.links["next"]["url"])
    assert seen == expected
    assert requests == math.ceil(len(expected) / 1000)


def test_forward_only_page_id_is_an_id_greater_than_condition(fwd: httpx.Client) -> None:
    resp = fwd.get("company/companies", params={"pageId": 8190, "pageSize": 5, "fields": "id"})
    assert [r["id"] for r in resp.json()] == [8191, 8194, 8197, 8200, 9001]
    assert resp.headers["link"] == ""  # nothing after the last id: a Link without rel="next"
    exact = fwd.get("company/companies", params={"pageId": 8188, "pageSize": 5, "fields": "id"})
    assert [r["id"] for r in exact.json()] == [8191, 8194, 8197, 8200, 9001]
    assert exact.headers["link"] == ""  # a full last page has no next link either


def test_forward_only_rejects_other_orders_and_page_id_needs_the_header(
    cw: httpx.Client, fwd: httpx.Client
) -> None:
    assert_error(
        fwd.get("company/companies", params={"orderBy": "name asc"}), 400, "InvalidObject", "InvalidField"
    )
    assert fwd.get("company/companies", params={"orderBy": "id asc"}).status_code == 200
    body = assert_error(cw.get("company/companies", params={"pageId": 5}), 400, "InvalidObject")
    assert "pagination-type" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("params", "field", "code"),
    [
        ({"pageSize": 0}, "pageSize", "OutOfRange"),
        ({"pageSize": 1001}, "pageSize", "OutOfRange"),
        ({"pageSize": -5}, "pageSize", "OutOfRange"),
        ({"pageSize": "ten"}, "pageSize", "InvalidField"),
        ({"page": 0}, "page", "OutOfRange"),
        ({"page": -1}, "page", "OutOfRange"),
        ({"page": "x"}, "page", "InvalidField"),
    ],
)
def test_page_parameters_out_of_range(
    cw: httpx.Client, params: dict[str, Any], field: str, code: str
) -> None:
    body = assert_error(cw.get("company/companies", params=params), 400, "InvalidObject", code)
    assert body["message"] == f"{field} object is invalid"
    assert body["errors"][0]["resource"] == field and body["errors"][0]["field"] == field


def test_page_size_error_body_matches_connectwise(cw: httpx.Client) -> None:
    for size in (0, 1001):
        assert cw.get("finance/agreements/1578/additions", params={"pageSize": size}).json() == {
            "code": "InvalidObject",
            "message": "pageSize object is invalid",
            "errors": [
                {
                    "code": "OutOfRange",
                    "message": "The field pageSize must be between 1 and 1000.",
                    "resource": "pageSize",
                    "field": "pageSize",
                }
            ],
        }
    assert len(cw.get("company/companies", params={"pageSize": 1000}).json()) == 1000
    assert len(cw.get("company/companies", params={"pageSize": 1}).json()) == 1


def test_query_parameter_names_are_case_insensitive(cw: httpx.Client) -> None:
    resp = cw.get("company/companies", params={"PageSize": 3, "Conditions": "id > 8000", "FIELDS": "id"})
    assert resp.json() == [{"id": 8002}, {"id": 8005}, {"id": 8008}]
