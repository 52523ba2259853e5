"""ConnectWise sandbox: PATCH, PUT, POST and DELETE of additions, the audit trail, state and reset."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.connectwise import ADDITION, AGREEMENTS, COMPANIES, PREFIX, assert_error

# -- writes -----------------------------------------------------------------------------------


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
        (
            [{"op": "replace", "path": "product/identifier", "value": "HUNTRESS-SAT"}],
            "product/identifier",
            "InvalidField",
        ),
        ([{"op": "replace", "path": "/product/id", "value": 754}], "product/id", "InvalidField"),
        (
            [{"op": "replace", "path": "AgreementStatus", "value": "Active"}],
            "AgreementStatus",
            "InvalidField",
        ),
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
