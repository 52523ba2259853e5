"""ConnectWise sandbox: resource shapes, unknown ids, additions of an agreement."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Sandbox
from tests.sandbox.connectwise import PREFIX, assert_error

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
