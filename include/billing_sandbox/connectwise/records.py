"""Scenario records (the scenario's abbreviations) turned into full ConnectWise API records."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from billing_sandbox.conditions import (
    Schema,
)

from .schemas import ADDITION_SCHEMA, AGREEMENT_SCHEMA, CATALOG_SCHEMA, COMPANY_SCHEMA
from .values import DEFAULT_DATE, Names, _date_or_raw, _href, _info, _money, _named, _now, _num, _prune

# ---------------------------------------------------------------------------------------------
# Scenario abbreviations → full API records


@dataclass
class Lookups:
    company_status: Names
    company_type: Names
    agreement_type: Names


def _new_lookups() -> Lookups:
    return Lookups(
        Names(["Active", "Inactive", "Not-Approved", "Credit Hold", "No Longer Pursuing"]),
        Names(["Client", "Prospect", "Vendor", "Partner", "Competitor", "Owner"]),
        Names(["Managed Services", "Block Time", "Break Fix", "Service Agreement"]),
    )


@cache
def _lookup(ident: int, name: str, path: str, key: str) -> dict[str, Any]:
    # Shared by every record that refers to it: records are never mutated below the top level.
    return {"id": ident, "name": name, "_info": {f"{key}_href": _href(f"{path}/{ident}")}}


def _company_ref(company: Mapping[str, Any] | None, company_id: int) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": company_id}
    if company:
        ref.update(identifier=company["identifier"], name=company["name"])
    ref["_info"] = {"company_href": _href(f"/company/companies/{company_id}")}
    return ref


def _overlay(
    record: dict[str, Any], src: Mapping[str, Any], schema: Schema, skip: Iterable[str], dates: Iterable[str]
) -> None:
    """Scenario keys that already use API names replace the defaults (dates made canonical).

    Only names the resource has are taken, so a generator's own notes never reach the API."""
    skip, dates = set(skip), set(dates)
    for key, value in src.items():
        if key in skip or (key not in record and not schema.is_object(key) and schema.resolve(key) != key):
            continue
        record[key] = _date_or_raw(value) if key in dates else value


def build_company(src: Mapping[str, Any], lk: Lookups) -> dict[str, Any]:
    cid = src["id"]
    deleted = bool(src.get("deletedFlag", False))
    entered = _date_or_raw(src.get("dateAcquired")) or DEFAULT_DATE
    site_id = cid * 10 + 1  # one "Main" site per company; ids only need to be stable and unique
    status = _named(
        src.get("status"), lk.company_status, "Active", "status_href", "/company/companies/statuses"
    )
    types = [
        _named(t, lk.company_type, "Client", "type_href", "/company/companies/types")
        for t in src.get("types") or ["Client"]
    ]
    record: dict[str, Any] = {
        "id": cid,
        "identifier": src["identifier"],
        "name": src["name"],
        "status": status,
        "addressLine1": "",
        "city": "",
        "state": "",
        "zip": "",
        "country": _lookup(1, "United States", "/company/countries", "country"),
        "phoneNumber": "",
        "faxNumber": "",
        "website": "",
        "territory": _lookup(1, "Main", "/system/locations", "territory"),
        "market": _lookup(1, "Managed Services", "/company/marketDescriptions", "market"),
        "accountNumber": "",
        "dateAcquired": entered,
        "annualRevenue": 0,
        "numberOfEmployees": 0,
        "timeZoneSetup": _lookup(
            1, "GMT-5/Eastern Time: US & Canada", "/system/timeZoneSetups", "timeZoneSetup"
        ),
        "leadFlag": False,
        "unsubscribeFlag": False,
        "billingTerms": _lookup(1, "Net 30 days", "/finance/billingTerms", "billingTerms"),
        "billToCompany": _company_ref(src, cid),
        "billingSite": {"id": site_id, "name": "Main"},
        "invoiceDeliveryMethod": _lookup(
            1, "Mail", "/finance/invoiceDeliveryMethods", "invoiceDeliveryMethod"
        ),
        "deletedFlag": deleted,
        "dateDeleted": entered if deleted else None,
        "mobileGuid": str(uuid.uuid5(uuid.NAMESPACE_OID, f"cw-company-{cid}")),
        "currency": {"id": 7, "symbol": "$", "currencyCode": "USD", "name": "US Dollars"},
        "isVendorFlag": False,
        "types": types,
        "site": {
            "id": site_id,
            "name": "Main",
            "_info": {"site_href": _href(f"/company/companies/{cid}/sites/{site_id}")},
        },
    }
    _overlay(
        record,
        src,
        COMPANY_SCHEMA,
        ("id", "identifier", "name", "status", "types", "deletedFlag"),
        ("dateAcquired", "dateDeleted"),
    )
    for key in ("parentCompany", "billToCompany"):
        if isinstance(record.get(key), int):
            record[key] = _company_ref(None, record[key])
    record["_info"] = _info(
        entered,
        contacts_href=_href(f"/company/contacts?conditions=company/id={cid}"),
        agreements_href=_href(f"/finance/agreements?conditions=company/id={cid}"),
        sites_href=_href(f"/company/companies/{cid}/sites"),
    )
    return _prune(record)


def build_catalog_item(src: Mapping[str, Any]) -> dict[str, Any]:
    pid = src["id"]
    description = src.get("description") or src["identifier"]
    price, cost = src.get("price", 0), src.get("cost", 0)
    record: dict[str, Any] = {
        "id": pid,
        "identifier": src["identifier"],
        "description": description,
        "inactiveFlag": False,
        "subcategory": _lookup(1, "Security", "/procurement/subcategories", "subcategory"),
        "type": _lookup(1, "Managed Security", "/procurement/types", "type"),
        "productClass": "NonInventory",
        "serializedFlag": False,
        "serializedCostFlag": False,
        "phaseProductFlag": False,
        "unitOfMeasure": _lookup(1, "Each", "/procurement/unitOfMeasures", "unitOfMeasure"),
        "minStockLevel": 0,
        "price": price,
        "cost": cost,
        "priceAttribute": "FixedFee",
        "taxableFlag": False,
        "dropShipFlag": False,
        "specialOrderFlag": False,
        "customerDescription": description,
        "manufacturerPartNumber": src["identifier"],
        "category": _lookup(1, "Managed Services", "/procurement/categories", "category"),
        "recurringFlag": True,
        "recurringRevenue": price,
        "recurringCost": cost,
        "recurringOneTimeFlag": False,
        "recurringBillCycle": _lookup(2, "Monthly", "/finance/billingCycles", "billingCycle"),
        "recurringCycleType": "CalendarYear",  # ContractYear | CalendarYear (pyconnectwise's CatalogItem)
        "calculatedPriceFlag": False,
        "calculatedCostFlag": False,
    }
    _overlay(record, src, CATALOG_SCHEMA, ("id",), ())
    record["_info"] = _info(DEFAULT_DATE, image_href=_href(f"/procurement/catalog/{pid}/image"))
    return _prune(record)


def build_agreement(
    src: Mapping[str, Any], companies: Mapping[int, Mapping[str, Any]], lk: Lookups
) -> dict[str, Any]:
    aid, company_id = src["id"], src["company_id"]
    contact_id = company_id * 10 + 1  # its billing contact, and its Main site (as in build_company)
    company = companies.get(company_id)
    start = _date_or_raw(src.get("startDate", DEFAULT_DATE))
    end = _date_or_raw(src.get("endDate"))
    cancelled = bool(src.get("cancelledFlag", src.get("agreementStatus") == "Cancelled"))
    no_end = bool(src.get("noEndingDateFlag", end is None))
    status = src.get("agreementStatus") or _agreement_status(cancelled, end, no_end)
    kind = _named(
        src.get("type"), lk.agreement_type, "Managed Services", "type_href", "/finance/agreements/types"
    )
    record: dict[str, Any] = {
        "id": aid,
        "name": src["name"],
        "type": kind,
        "company": _company_ref(company, company_id),
        "contact": {
            "id": contact_id,
            "name": "Billing Contact",
            "_info": {"contact_href": _href(f"/company/contacts/{contact_id}")},
        },
        "site": {"id": contact_id, "name": "Main"},
        "location": {"id": 2, "name": "Main"},
        "department": {"id": 10, "identifier": "Services", "name": "Services"},
        "restrictLocationFlag": False,
        "restrictDepartmentFlag": False,
        "startDate": start,
        "endDate": end,
        "noEndingDateFlag": no_end,
        "cancelledFlag": cancelled,
        "dateCancelled": _date_or_raw(src.get("dateCancelled")),
        "agreementStatus": status,
        "billingCycle": _lookup(2, "Monthly", "/finance/billingCycles", "billingCycle"),
        "billingTerms": _lookup(1, "Net 30 days", "/finance/billingTerms", "billingTerms"),
        "invoicingCycle": "CalendarYear",
        "billAmount": 0,
        "taxable": False,
        "prorateFlag": False,
        "invoiceProratedAdditionsFlag": False,
        "invoiceDescription": "",
        "topComment": False,
        "bottomComment": False,
        "workOrder": "",
        "internalNotes": "",
        "customerPO": "",
        "applicationUnits": "Amount",
        "applicationLimit": 0,
        "applicationUnlimitedFlag": False,
        "oneTimeFlag": False,
        "billOneTimeFlag": False,
        "periodType": "Current",
        "billStartDate": start,
        "nextInvoiceDate": _next_invoice_date() if status == "Active" else None,
    }
    _overlay(
        record,
        src,
        AGREEMENT_SCHEMA,
        ("id", "company_id", "type", "additions", "billToCompany", "parentAgreement", "agreementStatus"),
        ("startDate", "endDate", "dateCancelled", "nextInvoiceDate", "billStartDate"),
    )
    record["billToCompany"] = _bill_to(src.get("billToCompany", company_id), companies)
    parent = src.get("parentAgreement", src.get("parent_agreement_id"))
    if parent is not None:
        pid = parent["id"] if isinstance(parent, Mapping) else parent
        record["parentAgreement"] = {
            "id": pid,
            "name": parent.get("name", "") if isinstance(parent, Mapping) else "",
            "_info": {"agreement_href": _href(f"/finance/agreements/{pid}")},
        }
    record["_info"] = _info(
        start if isinstance(start, str) else DEFAULT_DATE,
        additions_href=_href(f"/finance/agreements/{aid}/additions"),
        adjustments_href=_href(f"/finance/agreements/{aid}/adjustments"),
        sites_href=_href(f"/finance/agreements/{aid}/sites"),
    )
    return _prune(record)


def _bill_to(value: Any, companies: Mapping[int, Mapping[str, Any]]) -> dict[str, Any] | None:
    if value is None:
        return None
    cid = value.get("id") if isinstance(value, Mapping) else value
    return _company_ref(companies.get(cid), cid) if isinstance(cid, int) else None


def _agreement_status(cancelled: bool, end: Any, no_end: bool) -> str:
    if cancelled:
        return "Cancelled"
    if not no_end and isinstance(end, str) and end < _now():
        return "Expired"
    return "Active"


def _next_invoice_date() -> str:
    today = datetime.now(UTC)
    first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    return first.strftime("%Y-%m-%dT00:00:00Z")


def _product_ref(product: Mapping[str, Any] | None, product_id: int) -> dict[str, Any]:
    ref: dict[str, Any] = {"id": product_id}
    if product:
        ref["identifier"] = product["identifier"]
    ref["_info"] = {"product_href": _href(f"/procurement/catalog/{product_id}")}
    return ref


def build_addition(
    src: Mapping[str, Any],
    agreement: Mapping[str, Any],
    catalog: Mapping[int, Mapping[str, Any]],
    sequence: int,
) -> tuple[dict[str, Any], str | None]:
    """(API record, the scenario's fixed status of the addition or None to derive it)."""
    product = catalog.get(src["product_id"])
    # Left out: the agreement's start (absent too when the agreement has none). An explicit null is
    # served as absent: effectiveDate is optional on real records (reference, "Resources").
    effective = _date_or_raw(src.get("effectiveDate", agreement.get("startDate")))
    record: dict[str, Any] = {
        "id": src["id"],
        "product": _product_ref(product, src["product_id"]),
        "quantity": src["quantity"],
        "lessIncluded": 0,
        "unitPrice": (product or {}).get("price", 0),
        "unitCost": (product or {}).get("cost", 0),
        "billCustomer": "Billable",
        "taxableFlag": False,
        "effectiveDate": effective,
        "cancelledDate": None,
        "invoiceDescription": (product or {}).get("customerDescription"),
        "description": (product or {}).get("description"),
        "uom": "Each",
        "sequenceNumber": sequence,
        "prorateCurrentPeriodFlag": False,
        "purchaseItemFlag": False,
        "specialOrderFlag": False,
        "agreementId": agreement["id"],
        "agreementStatus": "Active",  # derived fields: placed here, computed by derive_addition
        "billedQuantity": 0,
        "extPrice": 0,
        "extCost": 0,
        "margin": 0,
    }
    _overlay(
        record,
        src,
        ADDITION_SCHEMA,
        ("id", "product_id", "agreementId", "product", "agreementStatus", *DERIVED),
        ("effectiveDate", "cancelledDate"),
    )
    if src.get("unit_price") is not None:  # docs/contract.md §5: scenario `unit_price`, else the item's price
        record["unitPrice"] = src["unit_price"]
    record["_info"] = _info(effective if isinstance(effective, str) else DEFAULT_DATE)
    record = _prune(record)
    fixed = scenario_status(src)
    derive_addition(record, fixed, agreement.get("agreementStatus"))
    return record, fixed


DERIVED = ("billedQuantity", "extPrice", "extCost", "margin")


def scenario_status(src: Mapping[str, Any]) -> str | None:
    """The addition's status a scenario fixes, served as the addition's `agreementStatus`.

    Scenarios may carry `additionStatus` (the addition's own state, a name older scenarios and the
    generator use; ConnectWise itself has no such field) and `agreementStatus` (which the generator
    copies from the agreement). One field can hold only one: whichever is not Active wins, so an
    addition that either says is not active is served as not active."""
    given = [v for v in (src.get("additionStatus"), src.get("agreementStatus")) if isinstance(v, str) and v]
    return next((v for v in given if v != "Active"), given[0] if given else None)


def derive_addition(record: dict[str, Any], fixed_status: str | None, agreement_status: str | None) -> None:
    """Recompute what ConnectWise computes: billed quantity, extended amounts, margin, status.

    The status (the addition's `agreementStatus`): the scenario's if it fixes one; else Cancelled
    once `cancelledDate` is reached, otherwise its agreement's status."""
    quantity, less = _as_number(record.get("quantity")), _as_number(record.get("lessIncluded"))
    billed = max(quantity - less, 0)
    ext_price = billed * _as_number(record.get("unitPrice"))
    ext_cost = billed * _as_number(record.get("unitCost"))
    record["billedQuantity"] = _num(billed)
    record["extPrice"] = _money(ext_price)
    record["extCost"] = _money(ext_cost)
    record["margin"] = _money(ext_price - ext_cost)
    cancelled = record.get("cancelledDate")
    if fixed_status:
        record["agreementStatus"] = fixed_status
    else:
        past = isinstance(cancelled, str) and cancelled <= _now()
        record["agreementStatus"] = "Cancelled" if past else agreement_status or "Active"


def _as_number(value: Any) -> float | int:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0
