"""The filterable fields of each resource: what conditions, orderBy and fields may name."""

from __future__ import annotations

from billing_sandbox.conditions import (
    BOOL,
    DATETIME,
    NUMBER,
    STRING,
    Schema,
)

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


SCHEMAS = {
    "company": COMPANY_SCHEMA,
    "catalog": CATALOG_SCHEMA,
    "agreement": AGREEMENT_SCHEMA,
    "addition": ADDITION_SCHEMA,
}
