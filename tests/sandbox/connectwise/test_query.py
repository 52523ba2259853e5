"""ConnectWise sandbox: conditions, childConditions, orderBy and fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.sandbox.connectwise import AGREEMENTS, COMPANIES, all_ids, assert_error

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
