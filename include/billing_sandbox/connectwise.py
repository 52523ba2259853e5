"""A local ConnectWise Manage (REST API 3.0) for tests, demos and benchmarks.

`create_app(section, scenario)` serves the scenario's `connectwise` section with the real API's
routes, resource shapes, auth, paging, conditions and error bodies (docs/connectwise-sandbox.md
lists every route and every choice made where ConnectWise's behaviour is unconfirmed).
`app.state.sandbox` is the `ConnectWiseSandbox` behind it: `snapshot()`, `reset()` and
`error_body(status, message)` (the error shape common.py gives injected faults).

Speed matters (10,000 agreements, 20,000 additions, one additions GET per agreement): records are
held in their API shape, indexed by id, additions also by agreement; each record's JSON is cached
until it changes; filtered+sorted id lists are cached per query until the collection changes.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hmac
import json
import math
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache, lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .conditions import (
    BOOL,
    DATETIME,
    NUMBER,
    STRING,
    ConditionError,
    Schema,
    canonical_datetime,
    compile_condition,
)

DEFAULT_CODEBASE = "v4_6_release/"
VERSION_CODE = "v2026.11"
VERSION_NUMBER = "v4.6.2026110"
API_MEMBER = "APIMember"  # who ConnectWise records as entering/updating what the API wrote
SEED_MEMBER = "admin1"  # who "entered" the scenario's records
DEFAULT_DATE = "2025-01-01T00:00:00Z"
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 25, 1000
INT32_MAX = 2_147_483_647
JSON_TYPE = "application/json; charset=utf-8"
ADDITIONS_ROUTE = "/finance/agreements/{id}/additions"

# Records hold hrefs as BASE + path. The base (scheme, host, port, codebase) is only known per
# request, so serialized JSON gets one str.replace of the escaped placeholder per response.
BASE = "\x00cw-base\x00"
_BASE_JSON = json.dumps(BASE)[1:-1]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Errors: always {"code", "message", "errors": [{"code", "message", "resource", "field"}]}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: Iterable[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = [dict(e) for e in errors]
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "errors": self.errors}


ERROR_CODES = {
    400: "InvalidObject",
    401: "Unauthorized",
    403: "Security",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "UnexpectedError",
    503: "ServiceUnavailable",
}


def _error(code: str, message: str, resource: str, field: str) -> dict[str, str]:
    return {"code": code, "message": message, "resource": resource, "field": field}


def invalid(resource: str, field: str, code: str, message: str) -> ApiError:
    return ApiError(
        400, "InvalidObject", f"{resource} object is invalid", [_error(code, message, resource, field)]
    )


def not_found(resource: str, message: str, field: str = "id") -> ApiError:
    return ApiError(404, "NotFound", message, [_error("NotFound", message, resource, field)])


def unauthorized(message: str, status: int = 401) -> ApiError:
    # Never name the keys that were sent: error bodies end up in logs.
    if status == 404:
        # Cloud ConnectWise sometimes answers bad credentials with a plain 404 (reference, Errors;
        # developer guide "PSA API Requests": "getting a 404 ... on cloud? You may have incorrect
        # authentication"). Such a 404 says nothing about credentials.
        return not_found("route", "The requested resource was not found.", "")
    return ApiError(
        401, "Unauthorized", message, [_error("Unauthorized", message, "authorization", "Authorization")]
    )


# ---------------------------------------------------------------------------------------------
# Small value helpers


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=4096)
def _canonical_or_raw(value: str) -> str:
    try:
        return canonical_datetime(value)
    except ValueError:
        return value


def _date_or_raw(value: Any) -> Any:
    """Scenario dates in the API's canonical form; text that is no date is served as given."""
    return _canonical_or_raw(value) if isinstance(value, str) else value


def _num(value: float | int) -> float | int:
    """Integral numbers as JSON integers (38, not 38.0), as ConnectWise prints decimals."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _money(value: float) -> float | int:
    return _num(round(value + 0.0, 2))


def _prune(record: dict[str, Any]) -> dict[str, Any]:
    # ConnectWise leaves null properties out of its JSON rather than sending null.
    return {k: v for k, v in record.items() if v is not None}


def _href(path: str) -> str:
    return BASE + path


def _info(entered: str, member: str = SEED_MEMBER, **links: str) -> dict[str, Any]:
    """A record's `_info`: who entered and last updated it and when (the same here), then its links."""
    return {"lastUpdated": entered, "updatedBy": member, "dateEntered": entered, "enteredBy": member, **links}


class Names:
    """Stable ids for named lookups (statuses, types): known names first, others in order seen."""

    def __init__(self, known: Iterable[str]) -> None:
        self.ids: dict[str, int] = {}
        for name in known:
            self.id(name)

    def id(self, name: str) -> int:
        key = name.casefold()
        if key not in self.ids:
            self.ids[key] = len(self.ids) + 1
        return self.ids[key]


def _named(value: Any, names: Names, default: str, href_key: str, path: str) -> dict[str, Any]:
    """A scenario's `"Active"` or `{"name": "Active"}` (or with an id) → `{id, name, _info}`."""
    if isinstance(value, Mapping):
        name = str(value.get("name") or default)
        ident = value["id"] if isinstance(value.get("id"), int) else names.id(name)
    else:
        name = str(value) if value else default
        ident = names.id(name)
    return {"id": ident, "name": name, "_info": {href_key: _href(f"{path}/{ident}")}}


# ---------------------------------------------------------------------------------------------
# Filterable fields per resource (for conditions, orderBy and fields)


def _ref_fields(prefix: str, *names: str, kind: str = STRING) -> dict[str, str]:
    return {f"{prefix}/id": NUMBER, **{f"{prefix}/{n}": kind for n in names}}


_INFO_FIELDS = {
    "_info/lastUpdated": DATETIME,
    "_info/updatedBy": STRING,
    "_info/dateEntered": DATETIME,
    "_info/enteredBy": STRING,
}

COMPANY_SCHEMA = Schema(
    {
        "id": NUMBER,
        "identifier": STRING,
        "name": STRING,
        **_ref_fields("status", "name"),
        **_ref_fields("types", "name"),
        "deletedFlag": BOOL,
        "dateDeleted": DATETIME,
        **_ref_fields("parentCompany", "identifier", "name"),
        **_ref_fields("billToCompany", "identifier", "name"),
        "addressLine1": STRING,
        "addressLine2": STRING,
        "city": STRING,
        "state": STRING,
        "zip": STRING,
        **_ref_fields("country", "name"),
        "phoneNumber": STRING,
        "faxNumber": STRING,
        "website": STRING,
        "accountNumber": STRING,
        **_ref_fields("territory", "name"),
        **_ref_fields("market", "name"),
        **_ref_fields("site", "name"),
        **_ref_fields("billingTerms", "name"),
        **_ref_fields("timeZoneSetup", "name"),
        **_ref_fields("invoiceDeliveryMethod", "name"),
        **_ref_fields("currency", "currencyCode", "name"),
        "dateAcquired": DATETIME,
        "annualRevenue": NUMBER,
        "numberOfEmployees": NUMBER,
        "leadFlag": BOOL,
        "unsubscribeFlag": BOOL,
        "isVendorFlag": BOOL,
        "mobileGuid": STRING,
        **_INFO_FIELDS,
    },
    lists={"types"},
)

CATALOG_SCHEMA = Schema(
    {
        "id": NUMBER,
        "identifier": STRING,
        "description": STRING,
        "customerDescription": STRING,
        "inactiveFlag": BOOL,
        **_ref_fields("subcategory", "name"),
        **_ref_fields("type", "name"),
        **_ref_fields("category", "name"),
        "productClass": STRING,
        "serializedFlag": BOOL,
        "serializedCostFlag": BOOL,
        "phaseProductFlag": BOOL,
        **_ref_fields("unitOfMeasure", "name"),
        "minStockLevel": NUMBER,
        "price": NUMBER,
        "cost": NUMBER,
        "priceAttribute": STRING,
        "taxableFlag": BOOL,
        "dropShipFlag": BOOL,
        "specialOrderFlag": BOOL,
        "manufacturerPartNumber": STRING,
        **_ref_fields("manufacturer", "name"),
        "recurringFlag": BOOL,
        "recurringRevenue": NUMBER,
        "recurringCost": NUMBER,
        "recurringOneTimeFlag": BOOL,
        **_ref_fields("recurringBillCycle", "name"),
        "recurringCycleType": STRING,
        "calculatedPriceFlag": BOOL,
        "calculatedCostFlag": BOOL,
        **_INFO_FIELDS,
    }
)

AGREEMENT_SCHEMA = Schema(
    {
        "id": NUMBER,
        "name": STRING,
        **_ref_fields("type", "name"),
        **_ref_fields("company", "identifier", "name"),
        **_ref_fields("contact", "name"),
        **_ref_fields("site", "name"),
        **_ref_fields("location", "name"),
        **_ref_fields("department", "identifier", "name"),
        **_ref_fields("billToCompany", "identifier", "name"),
        **_ref_fields("parentAgreement", "name"),
        "agreementStatus": STRING,
        "cancelledFlag": BOOL,
        "dateCancelled": DATETIME,
        "reasonCancelled": STRING,
        "startDate": DATETIME,
        "endDate": DATETIME,
        "noEndingDateFlag": BOOL,
        **_ref_fields("billingCycle", "name"),
        **_ref_fields("billingTerms", "name"),
        "invoicingCycle": STRING,
        "billAmount": NUMBER,
        "taxable": BOOL,
        "prorateFlag": BOOL,
        "invoiceProratedAdditionsFlag": BOOL,
        "invoiceDescription": STRING,
        "nextInvoiceDate": DATETIME,
        "billStartDate": DATETIME,
        "workOrder": STRING,
        "internalNotes": STRING,
        "customerPO": STRING,
        "applicationUnits": STRING,
        "applicationLimit": NUMBER,
        "applicationUnlimitedFlag": BOOL,
        "oneTimeFlag": BOOL,
        "billOneTimeFlag": BOOL,
        "periodType": STRING,
        "restrictLocationFlag": BOOL,
        "restrictDepartmentFlag": BOOL,
        **_INFO_FIELDS,
    }
)

ADDITION_SCHEMA = Schema(
    {
        "id": NUMBER,
        "agreementId": NUMBER,
        **_ref_fields("product", "identifier"),
        "quantity": NUMBER,
        "lessIncluded": NUMBER,
        "unitPrice": NUMBER,
        "unitCost": NUMBER,
        "billedQuantity": NUMBER,
        "extPrice": NUMBER,
        "extCost": NUMBER,
        "margin": NUMBER,
        "billCustomer": STRING,
        "taxableFlag": BOOL,
        "effectiveDate": DATETIME,
        "cancelledDate": DATETIME,
        "invoiceDescription": STRING,
        "description": STRING,
        "uom": STRING,
        "sequenceNumber": NUMBER,
        "prorateCurrentPeriodFlag": BOOL,
        "purchaseItemFlag": BOOL,
        "specialOrderFlag": BOOL,
        # The addition's own status. ConnectWise has no `additionStatus` (pyconnectwise's Addition
        # model, generated from ConnectWise's OpenAPI; reference, "Resources the sync touches").
        "agreementStatus": STRING,
        **_INFO_FIELDS,
    }
)


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
    if src.get("unit_price") is not None:  # CONTRACTS §5: scenario `unit_price`, else the item's price
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


# ---------------------------------------------------------------------------------------------
# Collections


class Collection:
    """One resource's records by id (ids kept sorted), with per-record JSON and query caches."""

    def __init__(self, resource: str, schema: Schema, records: Iterable[dict[str, Any]]) -> None:
        self.resource = resource
        self.schema = schema
        self.by_id: dict[int, dict[str, Any]] = {r["id"]: r for r in records}
        self.ids = sorted(self.by_id)
        self.version = 0
        self._json: dict[int, str] = {}
        self._queries: OrderedDict[tuple[Any, ...], tuple[int, list[int]]] = OrderedDict()
        self.paths = _known_paths(schema, next(iter(self.by_id.values()), None))

    def json(self, rid: int) -> str:
        text = self._json.get(rid)
        if text is None:
            text = self._json[rid] = _dumps(self.by_id[rid])
        return text

    def changed(self, rid: int) -> None:
        self.version += 1
        self._json.pop(rid, None)

    def add(self, record: dict[str, Any]) -> None:
        self.by_id[record["id"]] = record
        bisect.insort(self.ids, record["id"])
        self.changed(record["id"])

    def remove(self, rid: int) -> None:
        del self.by_id[rid]
        del self.ids[bisect.bisect_left(self.ids, rid)]
        self.changed(rid)

    def cached(self, key: tuple[Any, ...], compute: Callable[[], list[int]]) -> list[int]:
        hit = self._queries.get(key)
        if hit is not None and hit[0] == self.version:
            self._queries.move_to_end(key)
            return hit[1]
        ids = compute()
        self._queries[key] = (self.version, ids)
        if len(self._queries) > 32:
            self._queries.popitem(last=False)
        return ids


def _known_paths(schema: Schema, sample: Mapping[str, Any] | None) -> dict[str, str]:
    """lower-case path → canonical path, for `fields`: schema leaves, their parents, sample keys."""
    paths: set[str] = set()
    for leaf in schema.fields:
        parts = leaf.split("/")
        paths.update("/".join(parts[: i + 1]) for i in range(len(parts)))

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, list):
            for item in value[:1]:
                walk(item, prefix)
        elif isinstance(value, Mapping):
            for key, sub in value.items():
                path = f"{prefix}/{key}" if prefix else key
                paths.add(path)
                walk(sub, path)

    walk(sample, "")
    return {p.lower(): p for p in paths}


# ---------------------------------------------------------------------------------------------
# List queries: conditions, orderBy, fields, page / pageSize / pageId


@dataclass
class ListQuery:
    predicate: Callable[[Mapping[str, Any]], bool] | None
    order: list[tuple[str, bool]]  # (canonical path, descending)
    page: int
    page_size: int
    forward_only: bool
    page_id: int | None
    projection: dict[str, Any] | None
    key: tuple[Any, ...]


def _params(request: Request) -> dict[str, str]:
    # ASP.NET binds query parameters case-insensitively: `PageSize` works like `pageSize`.
    return {k.lower(): v for k, v in request.query_params.multi_items()}


def _int_param(params: Mapping[str, str], name: str, default: int | None, low: int, high: int) -> int | None:
    raw = params.get(name.lower())
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        shown = raw if len(raw) <= 40 else raw[:40] + "..."
        raise invalid(name, name, "InvalidField", f"The value '{shown}' is not valid for {name}.") from None
    if not low <= value <= high:
        raise invalid(name, name, "OutOfRange", f"The field {name} must be between {low} and {high}.")
    return value


@lru_cache(maxsize=256)
def _compiled(text: str, schema_name: str) -> Callable[[Mapping[str, Any]], bool] | None:
    return compile_condition(text, SCHEMAS[schema_name])


def _condition(
    params: Mapping[str, str], name: str, schema_name: str
) -> Callable[[Mapping[str, Any]], bool] | None:
    text = params.get(name.lower())
    if text is None:
        return None
    try:
        return _compiled(text, schema_name)
    except ConditionError as exc:
        raise invalid(name, name, "InvalidCondition", str(exc)) from None


def parse_list_query(request: Request, coll: Collection) -> ListQuery:
    params = _params(request)
    schema_name = coll.resource
    predicate = _condition(params, "conditions", schema_name)
    child = _condition(params, "childConditions", schema_name)
    if params.get("customfieldconditions", "").strip():
        raise invalid(
            "customFieldConditions",
            "customFieldConditions",
            "InvalidCondition",
            "No custom fields are defined on this sandbox's records.",
        )
    if predicate and child:
        first, second = predicate, child
        predicate = lambda r: first(r) and second(r)  # noqa: E731
    elif child:
        predicate = child
    forward = request.headers.get("pagination-type", "").strip().lower() == "forward-only"
    order = _order_by(params.get("orderby"), coll.schema)
    if forward and order and order != [("id", False)]:
        raise invalid(
            "orderBy",
            "orderBy",
            "InvalidField",
            "Forward-only pagination always orders by id asc; drop orderBy.",
        )
    page_id = _int_param(params, "pageId", None, 0, INT32_MAX)
    if page_id is not None and not forward:
        raise invalid(
            "pageId",
            "pageId",
            "InvalidField",
            "pageId needs the request header pagination-type: forward-only.",
        )
    return ListQuery(
        predicate=predicate,
        order=[] if forward else order,
        page=_int_param(params, "page", 1, 1, INT32_MAX) or 1,
        page_size=_int_param(params, "pageSize", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX) or PAGE_SIZE_DEFAULT,
        forward_only=forward,
        page_id=page_id,
        projection=_projection(params.get("fields"), coll),
        key=(
            params.get("conditions"),
            params.get("childconditions"),
            params.get("orderby") if not forward else None,
        ),
    )


def _order_by(text: str | None, schema: Schema) -> list[tuple[str, bool]]:
    if text is None or not text.strip():
        return []
    order = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise invalid(
                "orderBy", "orderBy", "InvalidField", f"Cannot read '{part.strip()}': use 'field asc|desc'."
            )
        path = schema.resolve(words[0])
        if path is None:
            raise invalid("orderBy", "orderBy", "InvalidField", f"Unknown field '{words[0]}' in orderBy.")
        if any(path.startswith(f"{p}/") for p in schema.lists):
            raise invalid(
                "orderBy", "orderBy", "InvalidField", f"Cannot order by '{path}': it is inside a list."
            )
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise invalid(
                "orderBy", "orderBy", "InvalidField", f"Unknown direction '{words[1]}': use asc or desc."
            )
        order.append((path, direction == "desc"))
    return order


def _projection(text: str | None, coll: Collection) -> dict[str, Any] | None:
    """`fields=id,company/id` → {"id": None, "company": {"id": None}} (None: the whole value).

    A name the resource does not have is ignored, not a 400: ConnectWise answered `fields=*` with
    records holding only `id` (PSConnectWise issue #48, Manage 2018.4), so unknown names are skipped
    and a `fields` that names nothing known gives `id` alone, as observed there."""
    if text is None or not text.strip():
        return None
    tree: dict[str, Any] = {}
    for raw in text.split(","):
        name = raw.strip().strip("/")
        path = coll.paths.get(name.lower()) if name else None
        if path is None:
            continue
        node = tree
        parts = path.split("/")
        for part in parts[:-1]:
            if part in node and node[part] is None:
                break  # the whole parent is already asked for
            node = node.setdefault(part, {})
        else:
            node[parts[-1]] = None
    return tree or {"id": None}


def project(value: Any, tree: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [project(item, tree) for item in value]
    if not isinstance(value, Mapping):
        return value
    out = {}
    for key, sub in tree.items():
        if key in value:
            out[key] = value[key] if sub is None else project(value[key], sub)
    return out


def _sort_key(path: str, schema: Schema) -> Callable[[Mapping[str, Any]], tuple[bool, Any]]:
    parts = path.split("/")
    fold = schema.kind(path) == STRING

    def key(record: Mapping[str, Any]) -> tuple[bool, Any]:
        value: Any = record
        for part in parts:
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            return (False, 0)  # SQL Server: nulls first ascending, last descending
        if fold:
            return (True, str(value).casefold())
        return (True, value if isinstance(value, int | float | str) else str(value))

    return key


def select(coll: Collection, ids: list[int], q: ListQuery) -> list[int]:
    """The ids matching the query, in its order (ids arrive sorted by id: the tie-breaker)."""
    records = coll.by_id
    out = [i for i in ids if q.predicate(records[i])] if q.predicate else list(ids)
    for path, desc in reversed(q.order):
        key = _sort_key(path, coll.schema)
        try:
            out.sort(key=lambda i, k=key: k(records[i]), reverse=desc)
        except TypeError:  # mixed types in scenario data: fall back to text order
            out.sort(key=lambda i, k=key: str(k(records[i])), reverse=desc)
    return out


# ---------------------------------------------------------------------------------------------
# Writable addition fields


BILL_CUSTOMER = ("Billable", "DoNotBill", "NoCharge")
ADDITION_RESOURCE = "agreementAddition"

# field → (kind, label for the audit trail); kinds: quantity (number ≥ 0), number, date,
# date? (nullable), text, flag, bill, product.
WRITABLE: dict[str, tuple[str, str]] = {
    "product": ("product", "Product"),
    "quantity": ("quantity", "Quantity"),
    "lessIncluded": ("quantity", "Less Included"),
    "unitPrice": ("number", "Unit Price"),
    "unitCost": ("number", "Unit Cost"),
    "billCustomer": ("bill", "Bill Customer"),
    "taxableFlag": ("flag", "Taxable"),
    "effectiveDate": ("date", "Effective Date"),
    "cancelledDate": ("date?", "Cancelled Date"),
    "invoiceDescription": ("text", "Invoice Description"),
    "description": ("text", "Description"),
    "uom": ("text", "Unit of Measure"),
    "sequenceNumber": ("quantity", "Sequence Number"),
    "prorateCurrentPeriodFlag": ("flag", "Prorate Current Period"),
    "purchaseItemFlag": ("flag", "Purchase Item"),
    "specialOrderFlag": ("flag", "Special Order"),
}
READ_ONLY = (
    "id",
    "agreementId",
    "billedQuantity",
    "extPrice",
    "extCost",
    "margin",
    "agreementStatus",
    "_info",
)
REQUIRED = ("product", "billCustomer", "effectiveDate", "quantity")
REMOVED = {"number": 0, "quantity": 0, "flag": False}  # what `remove` leaves; other kinds become null
_WRITABLE_LOWER = {k.lower(): k for k in WRITABLE}
_NUMERIC_TEXT = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*")


def _field_error(field: str, code: str, message: str) -> ApiError:
    return invalid(ADDITION_RESOURCE, field, code, message)


def _coerce_number(field: str, value: Any, minimum: float | None) -> float | int:
    if isinstance(value, str) and _NUMERIC_TEXT.fullmatch(value):
        value = float(value) if re.search(r"[.eE]", value) else int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _field_error(field, "InvalidField", f"The field {field} must be a number.")
    if minimum is not None and value < minimum:
        raise _field_error(
            field, "OutOfRange", f"The field {field} must be greater than or equal to {minimum:g}."
        )
    if abs(value) > 1e12:
        raise _field_error(field, "OutOfRange", f"The field {field} is too large.")
    return _num(value)


class AdditionWriter:
    """Validates values for writable addition fields against the catalog."""

    def __init__(self, catalog: Collection) -> None:
        self.catalog = catalog
        self.by_identifier: dict[str, int] = {}
        for pid in catalog.ids:
            self.by_identifier.setdefault(catalog.by_id[pid]["identifier"].casefold(), pid)

    def coerce(self, field: str, value: Any) -> Any:
        kind = WRITABLE[field][0]
        if value is None and kind in ("date?", "text"):
            return None
        if value is None:
            raise _field_error(field, "NullValue", f"The field {field} cannot be null.")
        if kind == "quantity":
            return _coerce_number(field, value, 0)
        if kind == "number":
            return _coerce_number(field, value, None)
        if kind in ("date", "date?"):
            return self._date(field, value)
        if kind == "text":
            if not isinstance(value, str):
                raise _field_error(field, "InvalidField", f"The field {field} must be a string.")
            if len(value) > 4000:
                raise _field_error(
                    field, "MaxLengthField", f"The field {field} must be at most 4000 characters."
                )
            return value
        if kind == "flag":
            if not isinstance(value, bool):
                raise _field_error(field, "InvalidField", f"The field {field} must be true or false.")
            return value
        if kind == "bill":
            if value not in BILL_CUSTOMER:
                raise _field_error(
                    field,
                    "InvalidField",
                    f"The field billCustomer must be one of {', '.join(BILL_CUSTOMER)}.",
                )
            return value
        return self.product(value)

    def _date(self, field: str, value: Any) -> str:
        if isinstance(value, str):
            try:
                return canonical_datetime(value)
            except ValueError:
                pass
        raise _field_error(
            field, "InvalidField", f"The field {field} must be a date such as 2026-01-01T00:00:00Z."
        )

    def product(self, value: Any, field: str = "product") -> dict[str, Any]:
        if isinstance(value, Mapping) and value.get("id") is not None:
            pid = value["id"]
            if isinstance(pid, str) and pid.strip().isdigit():
                pid = int(pid)
            if not isinstance(pid, int) or isinstance(pid, bool) or pid not in self.catalog.by_id:
                raise _field_error("product/id", "NotFound", f"Product {pid} not found.")
        elif isinstance(value, Mapping) and isinstance(value.get("identifier"), str):
            pid = self.by_identifier.get(value["identifier"].casefold())
            if pid is None:
                raise _field_error(
                    "product/identifier", "NotFound", f"Product '{value['identifier']}' not found."
                )
        else:
            raise _field_error(
                field, "InvalidField", "The field product must be an object with an id or identifier."
            )
        return _product_ref(self.catalog.by_id[pid], pid)

    def defaults(self, product: Mapping[str, Any]) -> dict[str, Any]:
        """What fields take when a create or replace leaves them out; a field not here becomes null."""
        item = self.catalog.by_id[product["id"]]
        return {
            "lessIncluded": 0,
            "unitPrice": item.get("price", 0),
            "unitCost": item.get("cost", 0),
            "taxableFlag": False,
            "effectiveDate": datetime.now(UTC).strftime("%Y-%m-%dT00:00:00Z"),
            "invoiceDescription": item.get("customerDescription"),
            "description": item.get("description"),
            "uom": "Each",
            "prorateCurrentPeriodFlag": False,
            "purchaseItemFlag": False,
            "specialOrderFlag": False,
            "quantity": 0,
        }


def _show_value(value: Any) -> str:
    if value is None or value == "":
        return "(blank)"
    if isinstance(value, Mapping):
        return str(value.get("identifier") or value.get("id"))
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


# ---------------------------------------------------------------------------------------------
# The sandbox's data and operations


SNAPSHOT_FIELDS: dict[str, tuple[str, ...]] = {
    "company": (
        "id",
        "identifier",
        "name",
        "status",
        "types",
        "deletedFlag",
        "parentCompany",
        "billToCompany",
    ),
    "catalog": (
        "id",
        "identifier",
        "description",
        "customerDescription",
        "inactiveFlag",
        "productClass",
        "price",
        "cost",
        "recurringFlag",
    ),
    "agreement": (
        "id",
        "name",
        "type",
        "company",
        "agreementStatus",
        "cancelledFlag",
        "dateCancelled",
        "startDate",
        "endDate",
        "noEndingDateFlag",
        "parentAgreement",
        "billToCompany",
    ),
}


def _compact(record: Mapping[str, Any], keys: Iterable[str] | None) -> dict[str, Any]:
    """A copy of `keys` (None: all) with references stripped of their `_info` links."""
    out: dict[str, Any] = {}
    for key in record if keys is None else keys:
        if key not in record:
            continue
        value = record[key]
        if key == "_info":
            value = {k: v for k, v in value.items() if not k.endswith("_href")}
        elif isinstance(value, Mapping):
            value = {k: v for k, v in value.items() if k != "_info"}
        elif isinstance(value, list):
            value = [
                {k: v for k, v in x.items() if k != "_info"} if isinstance(x, Mapping) else x for x in value
            ]
        out[key] = value
    return out


SCHEMAS = {
    "company": COMPANY_SCHEMA,
    "catalog": CATALOG_SCHEMA,
    "agreement": AGREEMENT_SCHEMA,
    "addition": ADDITION_SCHEMA,
}


class ConnectWiseSandbox:
    """The data behind the app. Handlers run on the event loop; the lock guards snapshot()/reset()
    when they are called from another thread (admin routes, tests)."""

    def __init__(self, section: Mapping[str, Any], scenario: Mapping[str, Any] | None = None) -> None:
        # A private copy (JSON round trip: far faster than deepcopy at 20k records) that the
        # builders only read, so reset() can rebuild from it without copying again.
        self.section = json.loads(json.dumps(section))
        self.company_id = str(self.section["company_id"])
        self.codebase = str(self.section.get("codebase") or DEFAULT_CODEBASE).strip("/") + "/"
        account = ((scenario or {}).get("huntress") or {}).get("account") or {}
        self.company_name = str(self.section.get("company_name") or account.get("name") or self.company_id)
        # 401 (default) or 404, as cloud sites sometimes answer bad credentials (see `unauthorized`).
        self.bad_credentials_status = int(self.section.get("bad_credentials_status", 401))
        self.lock = threading.RLock()
        self._load_fixed(self.section)
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Restore the scenario's additions; the audit trail starts empty again."""
        with self.lock:
            self._load_additions(self.section)

    def _load_fixed(self, section: Mapping[str, Any]) -> None:
        """Companies, catalog and agreements: the API never writes them, so they are built once."""
        lk = _new_lookups()
        companies = (build_company(c, lk) for c in section["companies"])
        self.companies = Collection("company", COMPANY_SCHEMA, companies)
        self.catalog = Collection(
            "catalog", CATALOG_SCHEMA, (build_catalog_item(p) for p in section["catalog"])
        )
        agreements = (build_agreement(a, self.companies.by_id, lk) for a in section["agreements"])
        self.agreements = Collection("agreement", AGREEMENT_SCHEMA, agreements)
        self.writer = AdditionWriter(self.catalog)

    def _load_additions(self, section: Mapping[str, Any]) -> None:
        additions = []
        self.fixed_status: dict[int, str] = {}
        for src in section["agreements"]:
            agreement = self.agreements.by_id[src["id"]]
            for seq, add_src in enumerate(src.get("additions") or [], start=1):
                record, fixed = build_addition(add_src, agreement, self.catalog.by_id, seq)
                additions.append(record)
                if fixed:
                    self.fixed_status[record["id"]] = fixed
        self.additions = Collection("addition", ADDITION_SCHEMA, additions)
        self.by_agreement: dict[int, list[int]] = {aid: [] for aid in self.agreements.ids}
        for aid in self.additions.ids:
            self.by_agreement[self.additions.by_id[aid]["agreementId"]].append(aid)
        self.next_addition_id = (self.additions.ids[-1] if self.additions.ids else 0) + 1
        self.audit: list[dict[str, Any]] = []
        self.audit_by_addition: dict[int, list[dict[str, Any]]] = {}

    def snapshot(self) -> dict[str, Any]:
        """The current data, compact: API field names and values, without `_info` links.

        Additions are complete (every field, derived ones included); the other resources keep
        the fields a sync or a test looks at."""
        with self.lock:
            return {
                "company_id": self.company_id,
                "codebase": self.codebase,
                "companies": [_compact(r, SNAPSHOT_FIELDS["company"]) for r in self._records(self.companies)],
                "catalog": [_compact(r, SNAPSHOT_FIELDS["catalog"]) for r in self._records(self.catalog)],
                "agreements": [
                    _compact(r, SNAPSHOT_FIELDS["agreement"]) for r in self._records(self.agreements)
                ],
                "additions": [_compact(r, None) for r in self._records(self.additions)],
                "audit_trail": [dict(entry) for entry in self.audit],
                "counts": {
                    "companies": len(self.companies.ids),
                    "catalog": len(self.catalog.ids),
                    "agreements": len(self.agreements.ids),
                    "additions": len(self.additions.ids),
                    "audit_trail": len(self.audit),
                },
            }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """ConnectWise's error shape for faults the sandbox injects (used by common.py)."""
        code = ERROR_CODES.get(status, "UnexpectedError" if status >= 500 else "BadRequest")
        return ApiError(status, code, message, [_error(code, message, "request", "")]).body()

    @staticmethod
    def _records(coll: Collection) -> Iterable[dict[str, Any]]:
        return (coll.by_id[i] for i in coll.ids)

    # -- reads -------------------------------------------------------------------------------
    def agreement(self, agreement_id: int) -> dict[str, Any]:
        record = self.agreements.by_id.get(agreement_id)
        if record is None:
            raise not_found("agreement", f"Agreement with id {agreement_id} was not found.")
        return record

    def addition(self, agreement_id: int, addition_id: int) -> dict[str, Any]:
        self.agreement(agreement_id)
        record = self.additions.by_id.get(addition_id)
        if record is None or record["agreementId"] != agreement_id:
            raise not_found(
                ADDITION_RESOURCE,
                f"Agreement addition with id {addition_id} was not found on agreement {agreement_id}.",
            )
        return record

    # -- writes ------------------------------------------------------------------------------
    def patch_addition(self, agreement_id: int, addition_id: int, operations: Any) -> dict[str, Any]:
        record = self.addition(agreement_id, addition_id)
        if not isinstance(operations, list):
            raise _field_error(
                "patch",
                "InvalidPatch",
                'The body must be a JSON Patch array, e.g. [{"op": "replace", "path": "quantity", "value": 42}].',
            )
        updates: dict[str, Any] = {}
        for index, op in enumerate(operations):
            field, value = self._patch_operation(index, op)
            updates[field] = value
        return self._commit(record, updates)

    def _patch_operation(self, index: int, op: Any) -> tuple[str, Any]:
        where = f"operation {index}"
        if not isinstance(op, Mapping):
            raise _field_error(
                "patch", "InvalidPatch", f"{where}: each operation must be an object with op and path."
            )
        kind, path = op.get("op"), op.get("path")
        if not isinstance(kind, str) or kind.lower() not in ("replace", "add", "remove"):
            raise _field_error(
                "patch",
                "InvalidPatch",
                f"{where}: op must be replace, add or remove (got {json.dumps(kind)}).",
            )
        if not isinstance(path, str) or not path.strip("/ "):
            raise _field_error("patch", "InvalidPatch", f"{where}: path must name a field, e.g. quantity.")
        field = self._patch_path(path)
        kind = kind.lower()
        if kind == "remove":
            if field in REQUIRED:
                raise _field_error(
                    field, "NullValue", f"The field {field} is required and cannot be removed."
                )
            return field, REMOVED.get(WRITABLE[field][0])
        if "value" not in op:
            raise _field_error(field, "InvalidPatch", f"{where}: {kind} needs a value.")
        return field, self.writer.coerce(field, op["value"])

    @staticmethod
    def _patch_path(path: str) -> str:
        """The field a JSON Patch path names: a bare field name as the API spells it, with or
        without one leading slash (`quantity`, `/quantity`: both seen in real clients, reference
        "Writes"). Paths are case-sensitive and name top-level fields only; `Quantity`,
        `product/identifier` or `/quantity/` are refused, since the real API refuses or mishandles
        them (reference) and nothing public shows them working."""
        name = path[1:] if path.startswith("/") else path
        if name in WRITABLE:
            return name
        if name in READ_ONLY:
            raise _field_error(name, "ReadOnly", f"The field {name} is read-only.")
        top = name.split("/")[0]
        if top in READ_ONLY:
            raise _field_error(top, "ReadOnly", f"The field {top} is read-only.")
        raise _field_error(
            name, "InvalidField", f"Unknown field '{name}': a patch path is a field name such as quantity."
        )

    def put_addition(self, agreement_id: int, addition_id: int, body: Any) -> dict[str, Any]:
        record = self.addition(agreement_id, addition_id)
        values = self._full_values(body)
        if body.get("id") not in (None, addition_id):
            raise _field_error(
                "id", "InvalidField", f"The body's id {body.get('id')!r} does not match {addition_id}."
            )
        if body.get("agreementId") not in (None, agreement_id):
            raise _field_error("agreementId", "ReadOnly", "An addition cannot move to another agreement.")
        if values["sequenceNumber"] is None:
            values["sequenceNumber"] = record.get("sequenceNumber")
        return self._commit(record, values)

    def create_addition(self, agreement_id: int, body: Any) -> dict[str, Any]:
        agreement = self.agreement(agreement_id)
        values = self._full_values(body)
        if values["sequenceNumber"] is None:
            siblings = (
                self.additions.by_id[i].get("sequenceNumber", 0) for i in self.by_agreement[agreement_id]
            )
            values["sequenceNumber"] = max(siblings, default=0) + 1
        record: dict[str, Any] = {"id": self.next_addition_id, **values}
        record.update(agreementId=agreement_id, agreementStatus="Active")
        record.update(dict.fromkeys(DERIVED, 0))
        record["_info"] = _info(_now(), API_MEMBER)
        record = _prune(record)
        derive_addition(record, None, agreement.get("agreementStatus"))
        self.next_addition_id += 1
        self.additions.add(record)
        self.by_agreement[agreement_id].append(record["id"])
        product = record["product"].get("identifier", record["product"]["id"])
        self._audit(
            record, "Added", f"Addition {product} added with quantity {_show_value(record['quantity'])}"
        )
        return record

    def delete_addition(self, agreement_id: int, addition_id: int) -> None:
        record = self.addition(agreement_id, addition_id)
        self.additions.remove(addition_id)
        self.by_agreement[agreement_id].remove(addition_id)
        self.fixed_status.pop(addition_id, None)
        product = record["product"].get("identifier", record["product"]["id"])
        self._audit(
            record, "Deleted", f"Addition {product} deleted (quantity was {_show_value(record['quantity'])})"
        )

    def _full_values(self, body: Any) -> dict[str, Any]:
        """Every writable field of a POST/PUT body, defaults for those left out; unknown keys are
        ignored (as ConnectWise's JSON binder does), read-only ones too."""
        if not isinstance(body, Mapping):
            raise _field_error("body", "InvalidObject", "The body must be a JSON object.")
        given = {_WRITABLE_LOWER[k.lower()]: v for k, v in body.items() if k.lower() in _WRITABLE_LOWER}
        for field in ("product", "billCustomer"):
            if given.get(field) is None:
                raise _field_error(field, "NullValue", f"The field {field} is required.")
        values = {"product": self.writer.coerce("product", given["product"])}
        defaults = self.writer.defaults(values["product"])
        for field in WRITABLE:
            if field != "product":
                values[field] = (
                    self.writer.coerce(field, given[field]) if field in given else defaults.get(field)
                )
        return values

    def _commit(self, record: dict[str, Any], updates: Mapping[str, Any]) -> dict[str, Any]:
        changes = [(f, record.get(f), v) for f, v in updates.items() if record.get(f) != v]
        for field, _old, new in changes:
            if new is None:
                record.pop(field, None)
            else:
                record[field] = new
            if field == "cancelledDate":
                self.fixed_status.pop(record["id"], None)  # a new cancel date re-derives the status
        agreement_status = self.agreements.by_id[record["agreementId"]].get("agreementStatus")
        derive_addition(record, self.fixed_status.get(record["id"]), agreement_status)
        record["_info"] = {**record["_info"], "lastUpdated": _now(), "updatedBy": API_MEMBER}
        self.additions.changed(record["id"])
        if not changes:
            self._audit(record, "Saved", "Addition saved with no changes")
        for field, old, new in changes:
            label = WRITABLE[field][1]
            self._audit(record, label, f"{label} changed from {_show_value(old)} to {_show_value(new)}")
        return record

    def _audit(self, record: Mapping[str, Any], subtype: str, text: str) -> None:
        entry = {
            "text": text,
            "enteredDate": _now(),
            "enteredBy": API_MEMBER,
            "auditType": "AgreementAddition",
            "auditSubType": subtype,
            "auditSource": "API",
        }
        self.audit_by_addition.setdefault(record["id"], []).append(entry)
        self.audit.append(
            {"type": "AgreementAddition", "id": record["id"], "agreementId": record["agreementId"], **entry}
        )


# ---------------------------------------------------------------------------------------------
# HTTP


def _base(request: Request, sandbox: ConnectWiseSandbox) -> str:
    return f"{str(request.base_url).rstrip('/')}/{sandbox.codebase}apis/3.0"


def _json_text(
    text: str, request: Request, sandbox: ConnectWiseSandbox, status: int = 200, **headers: str
) -> Response:
    body = text.replace(_BASE_JSON, _base(request, sandbox))
    return Response(body, status_code=status, media_type=JSON_TYPE, headers=headers or None)


def _record_response(
    request: Request,
    sandbox: ConnectWiseSandbox,
    coll: Collection,
    record: Mapping[str, Any],
    status: int = 200,
) -> Response:
    tree = _projection(_params(request).get("fields"), coll) if request.method == "GET" else None
    text = _dumps(project(record, tree)) if tree else coll.json(record["id"])
    return _json_text(text, request, sandbox, status)


def _link(request: Request, drop: Iterable[str], **updates: int) -> str:
    drop = {d.lower() for d in drop} | {k.lower() for k in updates}
    items = [(k, v) for k, v in request.query_params.multi_items() if k.lower() not in drop]
    items += [(k, str(v)) for k, v in updates.items()]
    return str(request.url.replace(query=urlencode(items, quote_via=quote)))


def list_response(
    request: Request, sandbox: ConnectWiseSandbox, coll: Collection, ids: list[int] | None
) -> Response:
    """A page of `coll` (or of the `ids` subset, e.g. one agreement's additions)."""
    q = parse_list_query(request, coll)
    matched = _matching(coll, ids, q)
    if q.forward_only:
        start = bisect.bisect_right(matched, q.page_id) if q.page_id is not None else 0
        chunk = matched[start : start + q.page_size]
        links = []
        if chunk and start + q.page_size < len(matched):
            links.append((_link(request, ("page",), pageId=chunk[-1]), "next"))
    else:
        start = (q.page - 1) * q.page_size
        chunk = matched[start : start + q.page_size]
        links = _navigable_links(request, q, len(matched))
    if q.projection:
        text = _dumps([project(coll.by_id[i], q.projection) for i in chunk])
    else:
        text = "[" + ",".join(coll.json(i) for i in chunk) + "]"
    headers = {"Link": ", ".join(f'<{url}>; rel="{rel}"' for url, rel in links)} if links else {}
    if q.forward_only:
        # Forward-only answers carry `Link` on every page, empty on the last: public clients (the
        # ConnectWiseManageAPI PowerShell module's Invoke-CWMAllResult) read a missing header as
        # "this endpoint does not support forward-only" and stop on an empty one (reference, Errors).
        headers.setdefault("Link", "")
    return _json_text(text, request, sandbox, **headers)


def _navigable_links(request: Request, q: ListQuery, total: int) -> list[tuple[str, str]]:
    last = max(1, math.ceil(total / q.page_size))
    links = []
    if q.page > 1:
        links += [
            (_link(request, (), page=1), "first"),
            (_link(request, (), page=min(q.page - 1, last)), "prev"),
        ]
    if q.page < last:
        links += [(_link(request, (), page=q.page + 1), "next"), (_link(request, (), page=last), "last")]
    return links


def count_response(request: Request, coll: Collection, ids: list[int] | None) -> Response:
    q = parse_list_query(request, coll)
    n = len(ids) if ids is not None and not q.predicate else len(_matching(coll, ids, q))
    return JSONResponse({"count": n}, media_type=JSON_TYPE)


def _matching(coll: Collection, ids: list[int] | None, q: ListQuery) -> list[int]:
    """The ids of `coll` (or of its `ids` subset) the query selects, in its order; whole-collection
    queries are cached."""
    if ids is None:
        return coll.cached(q.key, lambda: select(coll, coll.ids, q))
    return select(coll, ids, q)


def _path_id(request: Request, name: str, resource: str, what: str) -> int:
    raw = request.path_params[name]
    if not re.fullmatch(r"\d{1,10}", raw) or int(raw) > INT32_MAX:
        raise not_found(resource, f"{what} with id {raw[:40]} was not found.")
    return int(raw)


def _agreement_id(request: Request) -> int:
    return _path_id(request, "id", "agreement", "Agreement")


def _addition_ids(request: Request) -> tuple[int, int]:
    """The ids in a `.../agreements/{id}/additions/{additionId}` path."""
    return _agreement_id(request), _path_id(request, "additionId", ADDITION_RESOURCE, "Agreement addition")


async def _body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _field_error("body", "InvalidObject", "The body is not valid JSON.") from None


def _check_auth(request: Request, sandbox: ConnectWiseSandbox) -> None:
    """Basic companyId+publicKey:privateKey (company id case-insensitive), then the clientId header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    status = sandbox.bad_credentials_status
    if scheme.lower() != "basic" or not token.strip():
        raise unauthorized(
            "Authentication is required: send Authorization: Basic companyId+publicKey:privateKey.", status
        )
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise unauthorized("The Authorization header is not valid Basic credentials.", status) from None
    user, colon, private = decoded.partition(":")
    company, plus, public = user.partition("+")
    section = sandbox.section
    ok = bool(colon and plus)
    ok &= hmac.compare_digest(company.lower().encode(), sandbox.company_id.lower().encode())
    ok &= hmac.compare_digest(public.encode(), str(section["public_key"]).encode())
    ok &= hmac.compare_digest(private.encode(), str(section["private_key"]).encode())
    if not ok:
        raise unauthorized(
            "Invalid credentials: the company, public key or private key is not valid.", status
        )
    client_id = request.headers.get("clientid", "").strip()
    if not client_id:
        raise invalid(
            "clientId", "clientId", "Required", "The clientId header is required on every API request."
        )
    if not hmac.compare_digest(
        client_id.lower().encode(), str(section["client_id"]).strip().lower().encode()
    ):
        raise invalid(
            "clientId", "clientId", "InvalidClientId", "The clientId header is not a registered integration."
        )


VENDOR_TYPE = "application/vnd.connectwise.com+json"
VERSION_FORMAT = re.compile(r"\d{4}\.\d{1,2}")


def _check_accept(request: Request) -> None:
    """`Accept: application/vnd.connectwise.com+json; version=YYYY.N` pins a version; any such
    version is served (ConnectWise maps it to the newest model released at or before it: developer
    guide, "PSA Versioning"), as are plain `application/json` and `*/*` (the latest). A version that
    is no YYYY.N release number is refused: nothing public says what ConnectWise does with one, and
    the stricter reading keeps a client from sending a malformed pin unnoticed."""
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() != VENDOR_TYPE:
            continue
        for param in params:
            key, _, value = param.partition("=")
            version = value.strip().strip('"')
            if key.strip().lower() == "version" and not VERSION_FORMAT.fullmatch(version):
                shown = version if len(version) <= 20 else version[:20] + "..."
                raise invalid(
                    "Accept",
                    "version",
                    "InvalidVersion",
                    f"The API version '{shown}' is not a release such as 2025.1 (YYYY.N).",
                )


def create_app(section: dict[str, Any], scenario: dict[str, Any]) -> FastAPI:
    """The ConnectWise Manage API over `section` (the scenario's `connectwise` object)."""
    sandbox = ConnectWiseSandbox(section, scenario)
    app = FastAPI(title="ConnectWise Manage sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sandbox
    _install_errors(app)

    @app.get("/login/companyinfo/{company_id}")
    async def company_info(company_id: str) -> JSONResponse:
        if company_id.lower() != sandbox.company_id.lower():
            # An unknown company is 200 with the JSON body `null`, not a 404 (reference, Errors;
            # django-connectwise reads it so).
            return JSONResponse(None, media_type=JSON_TYPE)
        return JSONResponse(
            {
                "CompanyName": sandbox.company_name,
                "Codebase": sandbox.codebase,
                "VersionCode": VERSION_CODE,
                "VersionNumber": VERSION_NUMBER,
                "CompanyID": sandbox.company_id,
                "IsCloud": True,
                "SiteUrl": "",
            },
            media_type=JSON_TYPE,
        )

    router = APIRouter(prefix=f"/{sandbox.codebase}apis/3.0")
    _add_reads(router, sandbox)
    _add_writes(router, sandbox)
    app.include_router(router)
    return app


def _guard(sandbox: ConnectWiseSandbox) -> Callable[..., Any]:
    """Wrap a handler so that auth (and clientId) is checked before anything else."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def run(request: Request) -> Response:
            _check_auth(request, sandbox)
            _check_accept(request)
            result = handler(request)
            if hasattr(result, "__await__"):
                result = await result
            return result

        run.__name__ = handler.__name__
        return run

    return wrap


def _add_resource(
    router: APIRouter, s: ConnectWiseSandbox, path: str, attr: str, resource: str, what: str
) -> None:
    """GET list, /count and /{id} for one top-level collection."""
    guard = _guard(s)

    def listing(request: Request) -> Response:
        with s.lock:
            return list_response(request, s, getattr(s, attr), None)

    def count(request: Request) -> Response:
        with s.lock:
            return count_response(request, getattr(s, attr), None)

    def one(request: Request) -> Response:
        rid = _path_id(request, "id", resource, what)
        with s.lock:
            coll = getattr(s, attr)
            record = coll.by_id.get(rid)
            if record is None:
                raise not_found(resource, f"{what} with id {rid} was not found.")
            return _record_response(request, s, coll, record)

    listing.__name__, count.__name__, one.__name__ = f"list_{attr}", f"count_{attr}", f"get_{attr}"
    router.add_api_route(path, guard(listing), methods=["GET"])
    router.add_api_route(f"{path}/count", guard(count), methods=["GET"])
    router.add_api_route(f"{path}/{{id}}", guard(one), methods=["GET"])


def _add_reads(router: APIRouter, s: ConnectWiseSandbox) -> None:
    _add_resource(router, s, "/company/companies", "companies", "company", "Company")
    _add_resource(router, s, "/procurement/catalog", "catalog", "catalog", "Product")
    _add_resource(router, s, "/finance/agreements", "agreements", "agreement", "Agreement")
    guard = _guard(s)

    def additions(request: Request) -> Response:
        aid = _agreement_id(request)
        with s.lock:
            s.agreement(aid)
            return list_response(request, s, s.additions, s.by_agreement[aid])

    def additions_count(request: Request) -> Response:
        aid = _agreement_id(request)
        with s.lock:
            s.agreement(aid)
            return count_response(request, s.additions, s.by_agreement[aid])

    def addition(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        with s.lock:
            return _record_response(request, s, s.additions, s.addition(aid, xid))

    def audit_trail(request: Request) -> Response:
        params = _params(request)
        kind = params.get("type", "")
        if kind.lower() != "agreementaddition":
            raise invalid(
                "type", "type", "InvalidField", "type must be AgreementAddition (the only audited type here)."
            )
        rid = _int_param(params, "id", None, 1, INT32_MAX)
        if rid is None:
            raise invalid("id", "id", "Required", "The id parameter is required.")
        size = _int_param(params, "pageSize", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX) or PAGE_SIZE_DEFAULT
        page = _int_param(params, "page", 1, 1, INT32_MAX) or 1
        with s.lock:
            entries = list(reversed(s.audit_by_addition.get(rid, [])))  # newest first
        return JSONResponse(entries[(page - 1) * size : page * size], media_type=JSON_TYPE)

    def system_info(request: Request) -> Response:
        return JSONResponse(
            {
                "version": VERSION_NUMBER,
                "isCloud": True,
                "serverTimeZone": "Eastern Standard Time",
                "licenseBits": [],
            },
            media_type=JSON_TYPE,
        )

    router.add_api_route(ADDITIONS_ROUTE, guard(additions), methods=["GET"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/count", guard(additions_count), methods=["GET"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(addition), methods=["GET"])
    router.add_api_route("/system/audittrail", guard(audit_trail), methods=["GET"])
    router.add_api_route("/system/info", guard(system_info), methods=["GET"])


def _add_writes(router: APIRouter, s: ConnectWiseSandbox) -> None:
    guard = _guard(s)

    async def create(request: Request) -> Response:
        aid = _agreement_id(request)
        body = await _body(request)
        with s.lock:
            record = s.create_addition(aid, body)
            response = _record_response(request, s, s.additions, record, 201)
        response.headers["Location"] = (
            f"{_base(request, s)}/finance/agreements/{aid}/additions/{record['id']}"
        )
        return response

    async def patch(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        body = await _body(request)
        with s.lock:
            return _record_response(request, s, s.additions, s.patch_addition(aid, xid, body))

    async def put(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        body = await _body(request)
        with s.lock:
            return _record_response(request, s, s.additions, s.put_addition(aid, xid, body))

    def delete(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        with s.lock:
            s.delete_addition(aid, xid)
        return Response(status_code=204)

    router.add_api_route(ADDITIONS_ROUTE, guard(create), methods=["POST"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(patch), methods=["PATCH"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(put), methods=["PUT"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(delete), methods=["DELETE"])


def _install_errors(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(
            exc.body(), status_code=exc.status, headers=exc.headers or None, media_type=JSON_TYPE
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err = not_found("route", f"No API route matches {request.url.path}.", "")
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
            err = ApiError(
                405, "MethodNotAllowed", message, [_error("MethodNotAllowed", message, "route", "method")]
            )
        else:
            message = str(exc.detail)
            err = ApiError(exc.status_code, "Error", message, [_error("Error", message, "route", "")])
        headers = {**(exc.headers or {}), **err.headers}
        return JSONResponse(err.body(), status_code=err.status, headers=headers or None, media_type=JSON_TYPE)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
