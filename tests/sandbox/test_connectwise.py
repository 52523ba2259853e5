"""The ConnectWise Manage sandbox over real HTTP, against the real `python -m billing_sandbox` process.

Most tests share one process per module (started like `sandbox_factory` does, through
`start_sandbox`) so the suite stays fast; tests that write reset the data afterwards through
`POST /_sandbox/reset`. The `sandbox_factory` tests cover the demo scenario and the state/reset
admin routes end to end.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.conftest import Sandbox, start_sandbox
from tests.sandbox import make_scenario

PREFIX = "/v4_6_release/apis/3.0/"
COMPANY_ID, PUBLIC_KEY, PRIVATE_KEY = "demomsp", "pub-KEY-7f3a", "priv-SECRET-9c1e"
CLIENT_ID = "3f0b1c2e-aaaa-bbbb-cccc-123456789abc"
SECRETS = (PUBLIC_KEY, PRIVATE_KEY, CLIENT_ID)
N_COMPANIES = 2400
SPECIAL_NAME = 'O\'Brien "Quoted" Ltd'


def company_src(i: int) -> dict[str, Any]:
    company: dict[str, Any] = {"id": 1000 + 3 * i, "identifier": f"co{i:04d}", "name": f"Company {i:04d}"}
    if i % 50 == 0:
        company["deletedFlag"] = True
    if i % 7 == 0:
        company["status"] = "Inactive"
    if i % 11 == 0:
        company["types"] = ["Prospect"]
    return company


COMPANIES = [company_src(i) for i in range(1, N_COMPANIES + 1)] + [
    {"id": 9001, "identifier": "obrien", "name": SPECIAL_NAME}
]
CATALOG = [
    {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR", "price": 5.5, "cost": 3},
    {"id": 753, "identifier": "HUNTRESS-ITDR", "description": "Huntress ITDR", "price": 2, "cost": 1.25},
    {"id": 754, "identifier": "HUNTRESS-SAT", "description": "Huntress SAT", "price": 1, "cost": 0.4},
    {"id": 755, "identifier": "LEGACY-AV", "description": "Legacy AV", "inactiveFlag": True},
]
AGREEMENTS: list[dict[str, Any]] = [
    {
        "id": 1578,
        "name": "Managed Security",
        "type": "Managed Services",
        "company_id": 1003,
        "agreementStatus": "Active",
        "cancelledFlag": False,
        "startDate": "2025-01-01T00:00:00Z",
        "additions": [
            {
                "id": 501,
                "product_id": 752,
                "quantity": 38,
                "effectiveDate": "2025-01-01T00:00:00Z",
                "cancelledDate": None,
            },
            {
                "id": 502,
                "product_id": 753,
                "quantity": 12,
                "lessIncluded": 2,
                "effectiveDate": "2025-01-01T00:00:00Z",
            },
            {
                "id": 503,
                "product_id": 754,
                "quantity": 30,
                "effectiveDate": "2025-01-01T00:00:00Z",
                "cancelledDate": "2025-06-01T00:00:00Z",
            },
        ],
    },
    {
        "id": 1579,
        "name": "Old Block",
        "type": "Block Time",
        "company_id": 1006,
        "agreementStatus": "Cancelled",
        "cancelledFlag": True,
        "dateCancelled": "2025-03-01T00:00:00Z",
        "startDate": "2024-01-01T00:00:00Z",
        "additions": [{"id": 504, "product_id": 752, "quantity": 5}],
    },
    {
        "id": 1580,
        "name": "Security Plus",
        "type": "Managed Services",
        "company_id": 1009,
        "agreementStatus": "Active",
        "startDate": "2025-06-01T00:00:00Z",
        "endDate": "2030-12-31T00:00:00Z",
        "noEndingDateFlag": False,
        "additions": [
            {"id": 505, "product_id": 752, "quantity": 7},
            {"id": 506, "product_id": 752, "quantity": 0, "effectiveDate": "2026-12-01T00:00:00Z"},
        ],
    },
    {
        "id": 1581,
        "name": "Expired Plan",
        "type": "Managed Services",
        "company_id": 1003,
        "agreementStatus": "Expired",
        "startDate": "2023-01-01T00:00:00Z",
        "endDate": "2024-12-31T00:00:00Z",
    },
] + [
    {
        "id": 1582 + i,
        "name": f"Bulk {i}",
        "type": "Managed Services" if i % 2 else "Break Fix",
        "company_id": 1000 + 3 * (10 + i),
        "startDate": "2025-02-01T00:00:00Z",
    }
    for i in range(19)
]


def scenario() -> dict[str, Any]:
    data = make_scenario(1)
    data["connectwise"] = {
        "company_id": COMPANY_ID,
        "public_key": PUBLIC_KEY,
        "private_key": PRIVATE_KEY,
        "client_id": CLIENT_ID,
        "companies": COMPANIES,
        "catalog": CATALOG,
        "agreements": AGREEMENTS,
    }
    return data


def client(url: str, **headers: str) -> httpx.Client:
    return httpx.Client(
        base_url=url + PREFIX,
        auth=(f"{COMPANY_ID}+{PUBLIC_KEY}", PRIVATE_KEY),
        headers={"clientId": CLIENT_ID, **headers},
        timeout=30,
    )


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    sb = start_sandbox(scenario(), tmp_path_factory.mktemp("cw"))
    yield sb
    assert sb.stop() == 0


@pytest.fixture
def cw(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with client(sandbox.connectwise_url) as c:
        yield c


@pytest.fixture
def fwd(sandbox: Sandbox) -> Iterator[httpx.Client]:
    with client(sandbox.connectwise_url, **{"pagination-type": "forward-only"}) as c:
        yield c


@pytest.fixture
def writes(sandbox: Sandbox, cw: httpx.Client) -> Iterator[httpx.Client]:
    """A client for tests that write: the scenario's data is restored afterwards."""
    yield cw
    httpx.post(sandbox.connectwise_url + "/_sandbox/reset").raise_for_status()


def all_ids(c: httpx.Client, path: str, **params: Any) -> list[int]:
    """Every id of a list, forward-only, following rel="next"."""
    out: list[int] = []
    resp = c.get(
        path, params={"pageSize": 1000, "fields": "id", **params}, headers={"pagination-type": "forward-only"}
    )
    while True:
        assert resp.status_code == 200, resp.text
        out += [r["id"] for r in resp.json()]
        nxt = resp.links.get("next")
        if not nxt:
            return out
        resp = c.get(nxt["url"], headers={"pagination-type": "forward-only"})


def assert_error(
    resp: httpx.Response, status: int, code: str, detail_code: str | None = None
) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "errors"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    for err in body["errors"]:
        assert set(err) == {"code", "message", "resource", "field"}
    if detail_code:
        assert body["errors"][0]["code"] == detail_code
    for secret in SECRETS:
        assert secret not in resp.text
    return body


# -- discovery and auth -----------------------------------------------------------------------


def test_companyinfo_needs_no_auth_and_names_the_codebase(sandbox: Sandbox) -> None:
    resp = httpx.get(f"{sandbox.connectwise_url}/login/companyinfo/DemoMSP")
    assert resp.status_code == 200
    info = resp.json()
    assert info["Codebase"] == "v4_6_release/"
    assert info["VersionCode"] == "v2026.11"
    assert info["CompanyID"] == COMPANY_ID
    assert info["CompanyName"] == "Demo MSP"
    assert info["IsCloud"] is True
    assert {"VersionNumber", "SiteUrl"} <= set(info)
    # An unknown company is a 200 whose body is JSON null, not a 404 (reference, Errors).
    unknown = httpx.get(f"{sandbox.connectwise_url}/login/companyinfo/other")
    assert (unknown.status_code, unknown.content, unknown.json()) == (200, b"null", None)


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64!!!",
        _basic(f"{COMPANY_ID}+{PUBLIC_KEY}:wrong-private-key"),
        _basic(f"{COMPANY_ID}+wrong-public:{PRIVATE_KEY}"),
        _basic(f"othercompany+{PUBLIC_KEY}:{PRIVATE_KEY}"),
        _basic(f"{PUBLIC_KEY}:{PRIVATE_KEY}"),  # no company+ prefix
        _basic(f"{COMPANY_ID}+{PUBLIC_KEY}"),  # no private key
    ],
)
def test_bad_credentials_are_401_without_echoing_them(sandbox: Sandbox, authorization: str | None) -> None:
    headers = {"clientId": CLIENT_ID, **({"Authorization": authorization} if authorization else {})}
    resp = httpx.get(sandbox.connectwise_url + PREFIX + "company/companies", headers=headers)
    body = assert_error(resp, 401, "Unauthorized", "Unauthorized")
    assert "wrong" not in resp.text and "othercompany" not in resp.text
    assert body["errors"][0]["field"] == "Authorization"


def test_company_id_is_case_insensitive_keys_are_not(sandbox: Sandbox) -> None:
    ok = {"Authorization": _basic(f"DEMOMSP+{PUBLIC_KEY}:{PRIVATE_KEY}"), "clientId": CLIENT_ID.upper()}
    assert httpx.get(sandbox.connectwise_url + PREFIX + "system/info", headers=ok).status_code == 200
    bad = {**ok, "Authorization": _basic(f"demomsp+{PUBLIC_KEY.upper()}:{PRIVATE_KEY}")}
    assert httpx.get(sandbox.connectwise_url + PREFIX + "system/info", headers=bad).status_code == 401


@pytest.mark.parametrize(
    ("client_id", "detail"), [(None, "Required"), ("", "Required"), ("not-ours", "InvalidClientId")]
)
def test_client_id_header_is_required_and_checked(
    sandbox: Sandbox, client_id: str | None, detail: str
) -> None:
    headers = {"Authorization": _basic(f"{COMPANY_ID}+{PUBLIC_KEY}:{PRIVATE_KEY}")}
    if client_id is not None:
        headers["clientId"] = client_id
    for path in ("company/companies", "finance/agreements/1578/additions", "system/audittrail"):
        resp = httpx.get(sandbox.connectwise_url + PREFIX + path, headers=headers)
        body = assert_error(resp, 400, "InvalidObject", detail)
        assert body["errors"][0]["field"] == "clientId"
        assert "not-ours" not in resp.text


def test_writes_need_auth_too(sandbox: Sandbox) -> None:
    url = sandbox.connectwise_url + PREFIX + "finance/agreements/1578/additions/501"
    resp = httpx.patch(
        url, json=[{"op": "replace", "path": "quantity", "value": 1}], headers={"clientId": CLIENT_ID}
    )
    assert_error(resp, 401, "Unauthorized")
    with client(sandbox.connectwise_url) as c:
        assert c.get("finance/agreements/1578/additions/501").json()["quantity"] == 38


def test_unknown_routes_and_methods_use_the_error_shape(cw: httpx.Client, sandbox: Sandbox) -> None:
    assert_error(cw.get("finance/nothing"), 404, "NotFound")
    assert_error(cw.delete("company/companies"), 405, "MethodNotAllowed")
    other_codebase = httpx.get(sandbox.connectwise_url + "/v2025_1/apis/3.0/company/companies")
    assert_error(other_codebase, 404, "NotFound")


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


# -- conditions -------------------------------------------------------------------------------


def _companies(pred: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [c["id"] for c in COMPANIES if pred(c)]


def _agreements(pred: Callable[[dict[str, Any]], bool]) -> list[int]:
    return [a["id"] for a in AGREEMENTS if pred(a)]


CONDITION_CASES = [
    ("company/companies", "deletedFlag = false", _companies(lambda c: not c.get("deletedFlag"))),
    ("company/companies", "deletedFlag != false", _companies(lambda c: bool(c.get("deletedFlag")))),
    (
        "company/companies",
        'deletedFlag = TRUE AND status/name = "inactive"',
        _companies(lambda c: bool(c.get("deletedFlag")) and c.get("status") == "Inactive"),
    ),
    (
        "company/companies",
        'identifier like "CO00%"',
        _companies(lambda c: c["identifier"].startswith("co00")),
    ),
    ("company/companies", 'identifier not like "co%"', [9001]),
    ("company/companies", 'name contains "o\'brien"', [9001]),
    ("company/companies", 'name like "O\'Brien %"', [9001]),
    ("company/companies", "name contains '\"Quoted\"'", [9001]),
    ("company/companies", 'name not contains "company"', [9001]),
    ("company/companies", "id in (1003, 1006, 9001, 5)", [1003, 1006, 9001]),
    ("company/companies", "id < 1010", [1003, 1006, 1009]),
    ("company/companies", "id <= 1009", [1003, 1006, 1009]),
    ("company/companies", "id > 8195", [8197, 8200, 9001]),
    ("company/companies", "id >= 8197", [8197, 8200, 9001]),
    ("company/companies", "id != 1003 and id < 1010", [1006, 1009]),
    ("company/companies", "id not in (1003) and id <= 1009", [1006, 1009]),
    (
        "company/companies",
        'types/name = "Prospect" and id < 1100',
        _companies(lambda c: c.get("types") == ["Prospect"] and c["id"] < 1100),
    ),
    ("company/companies", 'id >= 8200 or id <= 1009 and identifier = "co0002"', [1006, 8200, 9001]),
    ("company/companies", '(id >= 8200 or id <= 1009) and identifier = "co0002"', [1006]),
    ("company/companies", "(id < 1007 or id > 8199) and (deletedFlag = false and id != 9001)", [1003, 1006]),
    ("company/companies", "billToCompany/id = 1003", [1003]),
    ("finance/agreements", "company/id = 1003", [1578, 1581]),
    ("finance/agreements", 'company/identifier = "CO0001"', [1578, 1581]),
    ("finance/agreements", 'type/name = "Block Time"', [1579]),
    ("finance/agreements", "cancelledFlag = true", [1579]),
    (
        "finance/agreements",
        'agreementStatus = "Active" and cancelledFlag = false and type/name in ("Managed Services")',
        _agreements(
            lambda a: (
                a.get("agreementStatus", "Active") == "Active"
                and not a.get("cancelledFlag")
                and a["type"] == "Managed Services"
            )
        ),
    ),
    ("finance/agreements", "endDate = null", _agreements(lambda a: "endDate" not in a)),
    ("finance/agreements", "endDate != null and endDate < [2025-01-01]", [1581]),
    ("finance/agreements", "startDate >= [2025-06-01T00:00:00Z]", [1580]),
    ("finance/agreements", "startDate > [2025-05-31T20:00:00-04:00]", []),
    ("finance/agreements", "dateCancelled > [2025-01-01]", [1579]),
    ("finance/agreements", "noEndingDateFlag = false", [1580, 1581]),
    ("finance/agreements", 'company/name like "Company 000_"', []),
    ("finance/agreements", 'company/name like "Company 000%" and id < 1582', [1578, 1579, 1580, 1581]),
    ("finance/agreements/1578/additions", 'product/identifier = "HUNTRESS-EDR"', [501]),
    ("finance/agreements/1578/additions", 'product/identifier not in ("huntress-edr")', [502, 503]),
    ("finance/agreements/1578/additions", "product/id in (753, 754)", [502, 503]),
    ("finance/agreements/1578/additions", "quantity > 10 and lessIncluded = 0", [501, 503]),
    ("finance/agreements/1578/additions", "cancelledDate = null", [501, 502]),
    ("finance/agreements/1578/additions", "cancelledDate = null or cancelledDate > [2026-01-01]", [501, 502]),
    ("finance/agreements/1578/additions", "billedQuantity = 10", [502]),
    ("finance/agreements/1578/additions", 'agreementStatus = "Cancelled"', [503]),
    ("finance/agreements/1578/additions", "extPrice >= 200", [501]),
    ("finance/agreements/1578/additions", 'description contains "edr"', [501]),
    (
        "finance/agreements/1578/additions",
        'billCustomer = "Billable" and taxableFlag = false',
        [501, 502, 503],
    ),
    ("finance/agreements/1580/additions", "effectiveDate > [2026-11-30]", [506]),
    ("procurement/catalog", 'identifier in ("HUNTRESS-EDR","huntress-sat")', [752, 754]),
    ("procurement/catalog", "inactiveFlag = true", [755]),
    ("procurement/catalog", "price > 1.5 and cost < 2", [753]),
]


@pytest.mark.parametrize(("path", "condition", "expected"), CONDITION_CASES)
def test_conditions_filter_lists_and_counts(
    cw: httpx.Client, path: str, condition: str, expected: list[int]
) -> None:
    assert all_ids(cw, path, conditions=condition) == sorted(expected)
    assert cw.get(f"{path}/count", params={"conditions": condition}).json() == {"count": len(expected)}


def test_child_conditions_combine_with_conditions(cw: httpx.Client) -> None:
    ids = all_ids(cw, "company/companies", conditions="id < 1100", childConditions='types/name = "Prospect"')
    assert ids == _companies(lambda c: c["id"] < 1100 and c.get("types") == ["Prospect"])


@pytest.mark.parametrize(
    ("condition", "fragment"),
    [
        ('name = "abc', "Unterminated string"),
        ("id = 1)", "Unbalanced ')' at position 7"),
        ("(id = 1", "Missing ')'"),
        ("nosuch = 1", "Unknown field 'nosuch' at position 1"),
        ("status = 1", "Field 'status' is an object"),
        ("id = abc", "found 'abc' (quote text values)"),
        ("id >> 1", "Expected a value after '>', found '>'"),
        ("name like 5", "needs a quoted text value"),
        ('startDate > "2026-01-01"', "square brackets"),
        ("startDate > [yesterday]", "Invalid date [yesterday]"),
        ("id in ()", "Empty list after 'in'"),
        ("id = 1 and", "Expected a field name, found end of input"),
        # No backslash escapes: nothing public shows ConnectWise accepting them (reference, Errors).
        ('name = "O\\"Brien"', "Backslash escapes are not supported"),
        ('additionStatus = "Active"', "Unknown field 'additionStatus'"),
    ],
)
def test_malformed_conditions_are_400_naming_the_problem(
    cw: httpx.Client, condition: str, fragment: str
) -> None:
    path = "finance/agreements" if "startDate" in condition else "company/companies"
    path = "finance/agreements/1578/additions" if "additionStatus" in condition else path
    body = assert_error(
        cw.get(path, params={"conditions": condition}), 400, "InvalidObject", "InvalidCondition"
    )
    assert body["message"] == "conditions object is invalid"
    err = body["errors"][0]
    assert err["resource"] == "conditions" and err["field"] == "conditions"
    assert fragment in err["message"] and "position" in err["message"]
    assert_error(
        cw.get(f"{path}/count", params={"conditions": condition}), 400, "InvalidObject", "InvalidCondition"
    )


def test_addition_fields_are_checked_in_conditions(cw: httpx.Client) -> None:
    body = assert_error(
        cw.get("finance/agreements/1578/additions", params={"conditions": "product/name = 'x'"}),
        400,
        "InvalidObject",
    )
    assert "Unknown field 'product/name'" in body["errors"][0]["message"]
    assert_error(
        cw.get("company/companies", params={"customFieldConditions": "caption = 'x'"}), 400, "InvalidObject"
    )


# -- orderBy and fields -----------------------------------------------------------------------


def test_order_by_asc_desc_and_nested(cw: httpx.Client) -> None:
    def names(**params: Any) -> list[str]:
        return [r["name"] for r in cw.get("company/companies", params={"fields": "name", **params}).json()]

    by_name = sorted((c["name"] for c in COMPANIES), key=str.casefold)
    assert names(orderBy="name asc", pageSize=5) == by_name[:5]
    assert names(orderBy="name desc", pageSize=5) == by_name[::-1][:5]
    assert names(orderBy="NAME", pageSize=3) == by_name[:3]  # asc by default; field names fold case
    ids = [r["id"] for r in cw.get("company/companies", params={"orderBy": "id desc", "pageSize": 3}).json()]
    assert ids == [9001, 8200, 8197]
    second_page = cw.get("company/companies", params={"orderBy": "id desc", "pageSize": 3, "page": 2})
    assert [r["id"] for r in second_page.json()] == [8194, 8191, 8188]
    agreements = cw.get(
        "finance/agreements", params={"orderBy": "company/name asc, id desc", "fields": "id", "pageSize": 4}
    ).json()
    assert [a["id"] for a in agreements] == [1581, 1578, 1579, 1580]
    by_end = cw.get(
        "finance/agreements", params={"orderBy": "endDate desc", "fields": "id", "pageSize": 2}
    ).json()
    assert [a["id"] for a in by_end] == [1580, 1581]  # nulls sort last descending


@pytest.mark.parametrize("order", ["nosuch asc", "name sideways", "name asc desc", "types/name asc", ","])
def test_bad_order_by_is_400(cw: httpx.Client, order: str) -> None:
    body = assert_error(
        cw.get("company/companies", params={"orderBy": order}), 400, "InvalidObject", "InvalidField"
    )
    assert body["errors"][0]["field"] == "orderBy"


def test_fields_trim_records_keeping_nested_parts(cw: httpx.Client) -> None:
    agreements = cw.get("finance/agreements", params={"fields": "id,company/id,type", "pageSize": 2}).json()
    for a in agreements:
        assert set(a) == {"id", "company", "type"}
        assert set(a["company"]) == {"id"}
        assert set(a["type"]) == {"id", "name", "_info"}
    additions = cw.get(
        "finance/agreements/1578/additions", params={"fields": "id,product/identifier,quantity,cancelledDate"}
    ).json()
    assert additions == [
        {
            "id": 501,
            "product": {"identifier": "HUNTRESS-EDR"},
            "quantity": 38,
        },  # null cancelledDate: left out
        {"id": 502, "product": {"identifier": "HUNTRESS-ITDR"}, "quantity": 12},
        {
            "id": 503,
            "product": {"identifier": "HUNTRESS-SAT"},
            "quantity": 30,
            "cancelledDate": "2025-06-01T00:00:00Z",
        },
    ]
    one = cw.get("company/companies/1003", params={"fields": "name,types/name,_info/lastUpdated"}).json()
    assert one == {
        "name": "Company 0001",
        "types": [{"name": "Client"}],
        "_info": {"lastUpdated": "2025-01-01T00:00:00Z"},
    }
    assert cw.get("company/companies/1003", params={"fields": "identifier"}).json() == {
        "identifier": "co0001"
    }


# -- resource shapes --------------------------------------------------------------------------


def test_resource_shapes(cw: httpx.Client, sandbox: Sandbox) -> None:
    base = sandbox.connectwise_url + PREFIX.rstrip("/")
    company = cw.get("company/companies/1003").json()
    assert {"id", "identifier", "name", "status", "types", "deletedFlag", "billToCompany", "_info"} <= set(
        company
    )
    assert company["status"]["name"] == "Active" and company["deletedFlag"] is False
    assert company["status"]["_info"]["status_href"].startswith(base)
    assert cw.get("company/companies/1006").json()["billToCompany"]["id"] == 1006

    product = cw.get("procurement/catalog/752").json()
    for key in (
        "identifier",
        "description",
        "customerDescription",
        "inactiveFlag",
        "productClass",
        "price",
        "cost",
    ):
        assert key in product
    assert product["recurringFlag"] is True and product["price"] == 5.5

    agreement = cw.get("finance/agreements/1578").json()
    assert agreement["type"]["name"] == "Managed Services" and isinstance(agreement["type"]["id"], int)
    assert agreement["company"] == {
        "id": 1003,
        "identifier": "co0001",
        "name": "Company 0001",
        "_info": {"company_href": f"{base}/company/companies/1003"},
    }
    assert agreement["agreementStatus"] == "Active" and agreement["cancelledFlag"] is False
    assert agreement["noEndingDateFlag"] is True and "endDate" not in agreement
    assert agreement["billingCycle"]["name"] == "Monthly"
    assert agreement["_info"]["additions_href"] == f"{base}/finance/agreements/1578/additions"
    cancelled = cw.get("finance/agreements/1579").json()
    assert cancelled["cancelledFlag"] is True and cancelled["dateCancelled"] == "2025-03-01T00:00:00Z"

    addition = cw.get("finance/agreements/1578/additions/502").json()
    assert addition["product"] == {
        "id": 753,
        "identifier": "HUNTRESS-ITDR",
        "_info": {"product_href": f"{base}/procurement/catalog/753"},
    }
    assert addition["agreementId"] == 1578 and addition["agreementStatus"] == "Active"
    assert (addition["quantity"], addition["lessIncluded"], addition["billedQuantity"]) == (12, 2, 10)
    assert (addition["unitPrice"], addition["unitCost"]) == (2, 1.25)
    assert (addition["extPrice"], addition["extCost"], addition["margin"]) == (20, 12.5, 7.5)
    assert addition["billCustomer"] == "Billable" and "additionStatus" not in addition
    assert addition["description"] == "Huntress ITDR" and addition["sequenceNumber"] == 2
    assert cw.get("finance/agreements/1578/additions/503").json()["agreementStatus"] == "Cancelled"


@pytest.mark.parametrize(
    "path",
    [
        "company/companies/1",
        "company/companies/abc",
        "procurement/catalog/9",
        "finance/agreements/9999",
        "finance/agreements/9999/additions",
        "finance/agreements/9999/additions/count",
        "finance/agreements/9999/additions/501",
        "finance/agreements/1580/additions/501",  # exists, but on another agreement
        "finance/agreements/1578/additions/99999",
    ],
)
def test_unknown_ids_are_404(cw: httpx.Client, path: str) -> None:
    assert_error(cw.get(path), 404, "NotFound", "NotFound")


def test_additions_list_count_and_get(cw: httpx.Client) -> None:
    listed = cw.get("finance/agreements/1578/additions").json()
    assert [a["id"] for a in listed] == [501, 502, 503]
    assert listed[0] == cw.get("finance/agreements/1578/additions/501").json()
    assert cw.get("finance/agreements/1578/additions/count").json() == {"count": 3}
    assert cw.get("finance/agreements/1581/additions").json() == []
    assert cw.get("finance/agreements/1581/additions/count").json() == {"count": 0}


# -- writes -----------------------------------------------------------------------------------

ADDITION = "finance/agreements/1578/additions/501"


def _audit(c: httpx.Client, addition_id: int = 501) -> list[dict[str, Any]]:
    resp = c.get("system/audittrail", params={"type": "AgreementAddition", "id": addition_id})
    assert resp.status_code == 200
    return resp.json()


@pytest.mark.parametrize(
    ("op", "path", "value"),
    [
        ("replace", "quantity", 40),
        ("replace", "/quantity", 40),
        ("replace", "quantity", "40"),
        ("add", "quantity", 40),
        ("REPLACE", "quantity", 40.0),
        ("replace", "/quantity", " 40 "),
    ],
)
def test_patch_quantity_forms(writes: httpx.Client, op: str, path: str, value: Any) -> None:
    resp = writes.patch(ADDITION, json=[{"op": op, "path": path, "value": value}])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["quantity"] == 40 and isinstance(body["quantity"], int)
    assert (body["billedQuantity"], body["extPrice"], body["extCost"], body["margin"]) == (40, 220, 120, 100)
    assert body["_info"]["updatedBy"] == "APIMember"
    assert writes.get(ADDITION).json() == body
    [entry] = _audit(writes)
    assert entry["text"] == "Quantity changed from 38 to 40"
    assert set(entry) == {"text", "enteredDate", "enteredBy", "auditType", "auditSubType", "auditSource"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["enteredDate"])
    assert (entry["auditType"], entry["auditSubType"], entry["enteredBy"]) == (
        "AgreementAddition",
        "Quantity",
        "APIMember",
    )


def test_patch_several_fields_and_remove(writes: httpx.Client) -> None:
    ops = [
        {"op": "replace", "path": "unitPrice", "value": "6.25"},
        {"op": "replace", "path": "lessIncluded", "value": 8},
        {"op": "replace", "path": "description", "value": "EDR seats"},
        {"op": "remove", "path": "invoiceDescription"},
        {"op": "replace", "path": "cancelledDate", "value": "2020-02-01"},
    ]
    body = writes.patch(ADDITION, json=ops).json()
    assert (body["quantity"], body["lessIncluded"], body["billedQuantity"]) == (38, 8, 30)
    assert (body["unitPrice"], body["extPrice"], body["extCost"], body["margin"]) == (6.25, 187.5, 90, 97.5)
    assert body["description"] == "EDR seats" and "invoiceDescription" not in body
    assert body["cancelledDate"] == "2020-02-01T00:00:00Z" and body["agreementStatus"] == "Cancelled"
    texts = [e["text"] for e in _audit(writes)]
    assert texts == [  # newest first; one entry per field changed, in patch order
        "Cancelled Date changed from (blank) to 2020-02-01T00:00:00Z",
        "Invoice Description changed from Huntress Managed EDR to (blank)",
        "Description changed from Huntress Managed EDR to EDR seats",
        "Less Included changed from 0 to 8",
        "Unit Price changed from 5.5 to 6.25",
    ]
    reopened = writes.patch(ADDITION, json=[{"op": "remove", "path": "cancelledDate"}]).json()
    assert "cancelledDate" not in reopened and reopened["agreementStatus"] == "Active"
    assert (
        writes.patch(ADDITION, json=[{"op": "remove", "path": "lessIncluded"}]).json()["billedQuantity"] == 38
    )


def test_patch_same_value_still_leaves_an_audit_entry(writes: httpx.Client) -> None:
    assert (
        writes.patch(ADDITION, json=[{"op": "replace", "path": "quantity", "value": 38}]).status_code == 200
    )
    assert [e["text"] for e in _audit(writes)] == ["Addition saved with no changes"]


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ([{"op": "replace", "path": "quantity", "value": "forty"}], "quantity", "InvalidField"),
        ([{"op": "replace", "path": "quantity", "value": -1}], "quantity", "OutOfRange"),
        ([{"op": "replace", "path": "quantity", "value": "-3"}], "quantity", "OutOfRange"),
        ([{"op": "replace", "path": "quantity", "value": None}], "quantity", "NullValue"),
        ([{"op": "replace", "path": "quantity", "value": True}], "quantity", "InvalidField"),
        ([{"op": "replace", "path": "quantity", "value": [1]}], "quantity", "InvalidField"),
        ([{"op": "replace", "path": "quantity"}], "quantity", "InvalidPatch"),
        ([{"op": "remove", "path": "quantity"}], "quantity", "NullValue"),
        ([{"op": "replace", "path": "nosuch", "value": 1}], "nosuch", "InvalidField"),
        # Paths are case-sensitive bare field names (reference, "Writes"): no other spelling, no sub-paths.
        ([{"op": "replace", "path": "Quantity", "value": 40}], "Quantity", "InvalidField"),
        ([{"op": "replace", "path": "/QUANTITY", "value": 40}], "QUANTITY", "InvalidField"),
        ([{"op": "replace", "path": "/quantity/", "value": 40}], "quantity/", "InvalidField"),
        ([{"op": "replace", "path": "//quantity", "value": 40}], "/quantity", "InvalidField"),
        ([{"op": "replace", "path": "product/identifier", "value": "HUNTRESS-SAT"}], "product/identifier",
         "InvalidField"),
        ([{"op": "replace", "path": "/product/id", "value": 754}], "product/id", "InvalidField"),
        ([{"op": "replace", "path": "AgreementStatus", "value": "Active"}], "AgreementStatus", "InvalidField"),
        ([{"op": "replace", "path": "agreementStatus", "value": "Active"}], "agreementStatus", "ReadOnly"),
        ([{"op": "replace", "path": "/product/name", "value": 1}], "product/name", "InvalidField"),
        ([{"op": "replace", "path": "billedQuantity", "value": 1}], "billedQuantity", "ReadOnly"),
        ([{"op": "replace", "path": "/extPrice", "value": 1}], "extPrice", "ReadOnly"),
        ([{"op": "replace", "path": "id", "value": 1}], "id", "ReadOnly"),
        ([{"op": "replace", "path": "agreementId", "value": 1580}], "agreementId", "ReadOnly"),
        ([{"op": "replace", "path": "_info/lastUpdated", "value": "x"}], "_info", "ReadOnly"),
        ([{"op": "move", "path": "quantity", "from": "lessIncluded"}], "patch", "InvalidPatch"),
        ([{"op": "test", "path": "quantity", "value": 38}], "patch", "InvalidPatch"),
        ([{"path": "quantity", "value": 1}], "patch", "InvalidPatch"),
        ([{"op": "replace", "value": 1}], "patch", "InvalidPatch"),
        (["quantity"], "patch", "InvalidPatch"),
        ({"op": "replace", "path": "quantity", "value": 40}, "patch", "InvalidPatch"),
        ({"quantity": 40}, "patch", "InvalidPatch"),
        ([{"op": "replace", "path": "billCustomer", "value": "Sometimes"}], "billCustomer", "InvalidField"),
        ([{"op": "replace", "path": "taxableFlag", "value": "yes"}], "taxableFlag", "InvalidField"),
        ([{"op": "replace", "path": "effectiveDate", "value": "soon"}], "effectiveDate", "InvalidField"),
        ([{"op": "replace", "path": "description", "value": 5}], "description", "InvalidField"),
        ([{"op": "replace", "path": "product", "value": {"id": 9999}}], "product/id", "NotFound"),
        # one bad operation rejects the whole patch
        (
            [
                {"op": "replace", "path": "unitPrice", "value": 9},
                {"op": "replace", "path": "quantity", "value": "x"},
            ],
            "quantity",
            "InvalidField",
        ),
    ],
)
def test_bad_patches_are_400_naming_the_field(writes: httpx.Client, body: Any, field: str, code: str) -> None:
    err = assert_error(writes.patch(ADDITION, json=body), 400, "InvalidObject", code)["errors"][0]
    assert err["field"] == field and err["resource"] == "agreementAddition"
    after = writes.get(ADDITION).json()
    assert (after["quantity"], after["unitPrice"]) == (38, 5.5)
    assert _audit(writes) == []


def test_patch_body_that_is_not_json_is_400(writes: httpx.Client) -> None:
    resp = writes.patch(ADDITION, content=b"quantity=40", headers={"Content-Type": "application/json"})
    assert_error(resp, 400, "InvalidObject", "InvalidObject")


def test_patch_product_by_identifier(writes: httpx.Client) -> None:
    body = writes.patch(
        ADDITION, json=[{"op": "replace", "path": "product", "value": {"identifier": "huntress-sat"}}]
    )
    assert body.json()["product"]["id"] == 754 and body.json()["product"]["identifier"] == "HUNTRESS-SAT"
    assert _audit(writes)[0]["text"] == "Product changed from HUNTRESS-EDR to HUNTRESS-SAT"


def test_put_replaces_the_writable_record(writes: httpx.Client) -> None:
    current = writes.get(ADDITION).json()
    body = {
        **current,
        "quantity": "45",
        "unitPrice": 6,
        "billedQuantity": 1,
        "extPrice": 0,
    }  # read-only ignored
    del body["description"]  # left out: back to its default (the catalog description)
    body["invoiceDescription"] = "Managed EDR seats"
    resp = writes.put(ADDITION, json=body)
    assert resp.status_code == 200, resp.text
    record = resp.json()
    assert (record["quantity"], record["billedQuantity"], record["extPrice"]) == (45, 45, 270)
    assert record["invoiceDescription"] == "Managed EDR seats"
    assert record["description"] == "Huntress Managed EDR" and record["sequenceNumber"] == 1
    texts = {e["text"] for e in _audit(writes)}
    assert "Quantity changed from 38 to 45" in texts and "Unit Price changed from 5.5 to 6" in texts
    for bad, field in [
        ({**current, "product": None}, "product"),
        ({k: v for k, v in current.items() if k != "billCustomer"}, "billCustomer"),
        ({**current, "quantity": "lots"}, "quantity"),
        ({**current, "id": 502}, "id"),
        ({**current, "agreementId": 1580}, "agreementId"),
        ([current], "body"),
    ]:
        err = assert_error(writes.put(ADDITION, json=bad), 400, "InvalidObject")["errors"][0]
        assert err["field"] == field
    assert writes.get(ADDITION).json()["quantity"] == 45


def test_post_creates_an_addition(writes: httpx.Client, sandbox: Sandbox) -> None:
    resp = writes.post(
        "finance/agreements/1578/additions",
        json={"product": {"id": 752}, "billCustomer": "Billable", "quantity": "3", "lessIncluded": 1},
    )
    assert resp.status_code == 201, resp.text
    created = resp.json()
    assert created["id"] == 507 and created["agreementId"] == 1578  # after the highest addition id
    assert (
        resp.headers["location"] == f"{sandbox.connectwise_url}{PREFIX}finance/agreements/1578/additions/507"
    )
    assert (created["quantity"], created["billedQuantity"], created["extPrice"]) == (3, 2, 11)
    assert created["sequenceNumber"] == 4 and created["agreementStatus"] == "Active"
    assert created["unitPrice"] == 5.5 and created["description"] == "Huntress Managed EDR"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", created["effectiveDate"])
    assert writes.get("finance/agreements/1578/additions/507").json() == created
    assert writes.get("finance/agreements/1578/additions/count").json() == {"count": 4}
    assert _audit(writes, 507)[0]["text"] == "Addition HUNTRESS-EDR added with quantity 3"
    by_identifier = writes.post(
        "finance/agreements/1581/additions",
        json={"product": {"identifier": "HUNTRESS-ITDR"}, "billCustomer": "NoCharge"},
    )
    assert by_identifier.status_code == 201
    assert by_identifier.json()["id"] == 508 and by_identifier.json()["quantity"] == 0


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"billCustomer": "Billable", "quantity": 1}, "product", "NullValue"),
        ({"product": {"id": 752}, "quantity": 1}, "billCustomer", "NullValue"),
        ({"product": 752, "billCustomer": "Billable"}, "product", "InvalidField"),
        ({"product": {"id": 9999}, "billCustomer": "Billable"}, "product/id", "NotFound"),
        ({"product": {"identifier": "NOPE"}, "billCustomer": "Billable"}, "product/identifier", "NotFound"),
        ({"product": {"id": 752}, "billCustomer": "Billable", "quantity": -2}, "quantity", "OutOfRange"),
        ({"product": {"id": 752}, "billCustomer": "Maybe"}, "billCustomer", "InvalidField"),
        ([{"product": {"id": 752}}], "body", "InvalidObject"),
    ],
)
def test_post_validation(writes: httpx.Client, body: Any, field: str, code: str) -> None:
    err = assert_error(
        writes.post("finance/agreements/1578/additions", json=body), 400, "InvalidObject", code
    )
    assert err["errors"][0]["field"] == field
    assert writes.get("finance/agreements/1578/additions/count").json() == {"count": 3}


def test_post_to_an_unknown_agreement_is_404(writes: httpx.Client) -> None:
    resp = writes.post(
        "finance/agreements/9999/additions", json={"product": {"id": 752}, "billCustomer": "Billable"}
    )
    assert_error(resp, 404, "NotFound")


def test_delete_then_gone(writes: httpx.Client) -> None:
    resp = writes.delete("finance/agreements/1578/additions/502")
    assert resp.status_code == 204 and resp.content == b""
    assert_error(writes.get("finance/agreements/1578/additions/502"), 404, "NotFound")
    assert_error(writes.delete("finance/agreements/1578/additions/502"), 404, "NotFound")
    assert [a["id"] for a in writes.get("finance/agreements/1578/additions").json()] == [501, 503]
    assert _audit(writes, 502)[0]["text"] == "Addition HUNTRESS-ITDR deleted (quantity was 12)"
    assert_error(writes.delete("finance/agreements/1580/additions/501"), 404, "NotFound")


def test_audit_trail_parameters(cw: httpx.Client) -> None:
    assert _audit(cw, 501) == []
    assert_error(cw.get("system/audittrail", params={"id": 501}), 400, "InvalidObject")
    assert_error(cw.get("system/audittrail", params={"type": "Ticket", "id": 501}), 400, "InvalidObject")
    assert_error(
        cw.get("system/audittrail", params={"type": "AgreementAddition"}), 400, "InvalidObject", "Required"
    )
    ok = cw.get("system/audittrail", params={"type": "agreementaddition", "id": 501, "deviceIdentifier": "x"})
    assert ok.status_code == 200


def test_audit_trail_pages_newest_first(writes: httpx.Client) -> None:
    for quantity in (39, 40, 41):
        writes.patch(
            ADDITION, json=[{"op": "replace", "path": "quantity", "value": quantity}]
        ).raise_for_status()
    params = {"type": "AgreementAddition", "id": 501, "pageSize": 2}
    first = writes.get("system/audittrail", params=params).json()
    second = writes.get("system/audittrail", params={**params, "page": 2}).json()
    assert [e["text"] for e in first + second] == [
        "Quantity changed from 40 to 41",
        "Quantity changed from 39 to 40",
        "Quantity changed from 38 to 39",
    ]


# -- state and reset through the admin routes --------------------------------------------------


def test_state_reflects_writes_and_reset_restores(writes: httpx.Client, sandbox: Sandbox) -> None:
    admin = sandbox.connectwise_url + "/_sandbox"
    writes.patch(ADDITION, json=[{"op": "replace", "path": "quantity", "value": 44}]).raise_for_status()
    writes.delete("finance/agreements/1580/additions/506").raise_for_status()
    state = httpx.get(f"{admin}/state").json()
    additions = {a["id"]: a for a in state["additions"]}
    assert additions[501]["quantity"] == 44 and additions[501]["extPrice"] == 242
    assert 506 not in additions and state["counts"]["additions"] == 5
    assert [(e["id"], e["text"]) for e in state["audit_trail"]] == [
        (501, "Quantity changed from 38 to 44"),
        (506, "Addition HUNTRESS-EDR deleted (quantity was 0)"),
    ]
    assert state["audit_trail"][0]["agreementId"] == 1578
    assert len(state["companies"]) == len(COMPANIES) and len(state["agreements"]) == len(AGREEMENTS)
    assert state["agreements"][0]["company"] == {"id": 1003, "identifier": "co0001", "name": "Company 0001"}

    httpx.post(f"{admin}/reset").raise_for_status()
    restored = httpx.get(f"{admin}/state").json()
    assert {a["id"]: a["quantity"] for a in restored["additions"]}[501] == 38
    assert restored["counts"]["additions"] == 6 and restored["audit_trail"] == []
    assert writes.get(ADDITION).json()["quantity"] == 38
    assert _audit(writes) == []


def test_injected_faults_use_the_connectwise_error_shape(sandbox: Sandbox, cw: httpx.Client) -> None:
    admin = sandbox.connectwise_url + "/_sandbox"
    httpx.post(f"{admin}/faults", json={"status_rate": {"429": 1.0}, "retry_after_s": 2}).raise_for_status()
    try:
        resp = cw.get("company/companies")
        body = assert_error(resp, 429, "TooManyRequests")
        assert resp.headers["retry-after"] == "2" and body["errors"]
    finally:
        httpx.post(f"{admin}/reset").raise_for_status()
    assert cw.get("company/companies").status_code == 200


# -- ConnectWise as it really is (reference; pyconnectwise's models) ---------------------------


def test_additions_carry_their_status_in_agreement_status_and_no_addition_status(cw: httpx.Client) -> None:
    listed = cw.get("finance/agreements/1578/additions").json()
    assert all("additionStatus" not in a for a in listed)
    assert {a["id"]: a["agreementStatus"] for a in listed} == {501: "Active", 502: "Active", 503: "Cancelled"}
    assert cw.get("finance/agreements/1578/additions", params={"fields": "id,additionStatus"}).json() == [
        {"id": 501}, {"id": 502}, {"id": 503}
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
    body = assert_error(cw.get("company/companies", headers={"Accept": accept}), 400, "InvalidObject",
                        "InvalidVersion")
    assert body["errors"][0]["field"] == "version"


def test_forward_only_single_page_still_carries_a_link_header(fwd: httpx.Client) -> None:
    resp = fwd.get("finance/agreements/1578/additions", params={"pageSize": 1000})
    assert len(resp.json()) == 3
    assert resp.headers["link"] == "" and resp.links == {}
    assert "link" not in fwd.get("finance/agreements/1578/additions", headers={"pagination-type": ""}).headers


def test_injected_409_reaches_writes_in_the_connectwise_error_shape(sandbox: Sandbox, writes: httpx.Client) -> None:
    admin = sandbox.connectwise_url + "/_sandbox"
    httpx.post(f"{admin}/faults", json={"status_rate": {"409": 1.0}}).raise_for_status()
    try:
        resp = writes.patch(ADDITION, json=[{"op": "replace", "path": "quantity", "value": 40}])
        assert_error(resp, 409, "Conflict")
        counted = httpx.get(f"{admin}/requests").json()["by_route_status"]
        assert counted["PATCH /v4_6_release/apis/3.0/finance/agreements/{id}/additions/{additionId}"] == {"409": 1}
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
        {"id": 503, "product_id": 752, "quantity": 2, "additionStatus": "Inactive", "agreementStatus": "Active"},
        {"id": 504, "product_id": 752, "quantity": 3, "additionStatus": "Active", "agreementStatus": "Expired"},
        {"id": 505, "product_id": 752, "quantity": 4, "effectiveDate": None},
    ]
    section["agreements"].append({"id": 1579, "name": "Open start", "company_id": 250, "startDate": None,
                                  "additions": [{"id": 506, "product_id": 752, "quantity": 5}]})
    sb = start_sandbox(data, tmp_path_factory.mktemp("cw-small"))
    yield sb
    assert sb.stop() == 0


def _small(sb: Sandbox, path: str, **kwargs: Any) -> httpx.Response:
    cw_section = sb.scenario["connectwise"]
    return httpx.get(f"{sb.connectwise_url}{SMALL}{path}", timeout=30, headers={"clientId": cw_section["client_id"]},
                     auth=(f"{cw_section['company_id']}+{cw_section['public_key']}", cw_section["private_key"]),
                     **kwargs)


def test_scenario_statuses_unit_prices_and_missing_dates(small: Sandbox) -> None:
    adds = {a["id"]: a for a in _small(small, "/1578/additions").json()}
    assert all("additionStatus" not in a for a in adds.values())
    assert {i: a["agreementStatus"] for i, a in adds.items()} == {
        501: "Active", 502: "Active", 503: "Inactive", 504: "Expired", 505: "Active"}
    # unitPrice: the scenario's `unit_price` (CONTRACTS §5), else its `unitPrice`, else the item's price.
    assert {i: a["unitPrice"] for i, a in adds.items()} == {501: 6.5, 502: 5.25, 503: 6.5, 504: 6.5, 505: 6.5}
    assert adds[502]["extPrice"] == 5.25
    # effectiveDate and cancelledDate are optional: an explicit null is served as an absent field.
    assert "effectiveDate" not in adds[505] and "cancelledDate" not in adds[505]
    assert "effectiveDate" in adds[501]
    assert "startDate" not in _small(small, "/1579").json()
    assert "effectiveDate" not in _small(small, "/1579/additions/506").json()


def test_bad_credentials_can_be_a_404_that_names_nothing(small: Sandbox) -> None:
    cw_section = small.scenario["connectwise"]
    for auth in [(f"{cw_section['company_id']}+{cw_section['public_key']}", "wrong-private"),
                 (f"othercompany+{cw_section['public_key']}", cw_section["private_key"])]:
        resp = httpx.get(f"{small.connectwise_url}{SMALL}", auth=auth, headers={"clientId": cw_section["client_id"]})
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
