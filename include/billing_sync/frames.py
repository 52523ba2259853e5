"""API records → pandas frames with explicit dtypes.

Every frame the sync passes between tasks has a fixed schema here: the staging tables in the
billing database are created from it, and `conform` applies it after reading back, so a frame
means the same on every worker whatever the database returned.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Literal

import pandas as pd

from .api_records import Addition, Agreement, CatalogItem, Company, Organization, UsageLine

# Huntress counts above this are treated as invalid rather than billed: no organization has ten
# million agents, and such a value is a data error that must not reach an invoice.
MAX_USAGE = 10_000_000

# The pandas dtypes a schema column can have (store.schema._sql_type maps each to SQL).
Dtype = Literal["Int64", "Float64", "string", "boolean", "datetime64[ns, UTC]"]

# name → {column: pandas dtype}. Order matters: it is the order of the staging table's columns.
SCHEMAS: dict[str, dict[str, Dtype]] = {
    # One row per invoice line × configured Huntress product.
    "usage": {
        "invoice_id": "Int64",
        "line_id": "Int64",
        "organization_id": "Int64",
        "organization_name": "string",
        "product": "string",
        # The value as Huntress sent it (JSON text); <NA> when absent. Absent or "null" counts as 0
        # only where the company has no live addition for the product (reconcile, docs/contract.md §2).
        "raw_quantity": "string",
        "quantity": "Int64",  # parsed count; <NA> unless raw is an integer in 0..MAX_USAGE
        "issue": "string",  # failed GX expectations (checks.py); <NA> when the row passed
    },
    "organizations": {
        "organization_id": "Int64",
        "name": "string",
        "key": "string",  # unique within its account only: a reseller's invoice spans accounts
        "account_id": "Int64",
        # Why the organization's account could not be read (Huntress's 403, huntress.AccountRefused):
        # the organization is known only as its invoice lines name it. <NA> for listed organizations.
        "unreadable": "string",
    },
    "companies": {
        "company_id": "Int64",
        "identifier": "string",
        "name": "string",
    },
    # One row per addition of a candidate agreement, agreement fields flattened in.
    "additions": {
        "addition_id": "Int64",
        "agreement_id": "Int64",
        "company_id": "Int64",
        "agreement_name": "string",
        "agreement_type": "string",
        "agreement_status": "string",
        "agreement_cancelled": "boolean",
        "agreement_start_date": "datetime64[ns, UTC]",  # where an addition without effectiveDate starts
        "agreement_end_date": "datetime64[ns, UTC]",
        "product_identifier": "string",
        "quantity": "Float64",
        "unit_price": "Float64",  # the addition's unitPrice, as read
        "effective_date": "datetime64[ns, UTC]",
        "cancelled_date": "datetime64[ns, UTC]",
        # The addition's own status: `agreementStatus` on the addition record (ConnectWise has no
        # `additionStatus`; pyconnectwise's Addition model).
        "addition_status": "string",
        # Date fields present but unreadable ("effectiveDate,cancelledDate"): never live, since an
        # unreadable date is not an absent one; <NA> when every date read.
        "unreadable_dates": "string",
        "issue": "string",  # failed GX expectations of live additions; <NA> when none
    },
    # One row per agreement extract_connectwise read (active, not cancelled, of the allowed types):
    # the agreements a person may add a missing addition to (review page, docs/contract.md §4 approvals).
    "agreements": {
        "agreement_id": "Int64",
        "company_id": "Int64",
        "name": "string",
        "type": "string",
        "status": "string",
        "cancelled": "boolean",
        "start_date": "datetime64[ns, UTC]",
        "end_date": "datetime64[ns, UTC]",
    },
    "org_map": {
        "organization_id": "Int64",
        "company_id": "Int64",
    },
    # The mapped catalog items as read (/procurement/catalog, the same request that finds them):
    # `price` is the fallback price of a key whose addition is missing or carries no unitPrice.
    "catalog": {
        "catalog_item_id": "Int64",
        "identifier": "string",
        "description": "string",
        "price": "Float64",
        "inactive": "boolean",
    },
    # The tenant's active billing_overrides, as the run applied them (store.overrides_frame).
    "overrides": {
        "override_id": "Int64",
        "company_id": "Int64",
        "product": "string",
        "rule": "string",  # minimum | fixed | exclude
        "quantity": "Float64",  # <NA> for exclude
        "created_by": "string",
        "note": "string",
    },
    # Output of reconcile: one row per sync key.
    "outcomes": {
        "sync_key": "string",  # "company:<id>:<product>" or "organization:<id>:<product>"
        "company_id": "Int64",
        "company_name": "string",
        "organization_ids": "string",  # comma-separated Huntress organization ids feeding the key
        "organization_names": "string",  # "; "-separated
        "match_rule": "string",  # org_map | key | name | <NA>
        "product": "string",  # Huntress product (edr, itdr, sat, siem)
        "catalog_identifier": "string",
        "agreement_id": "Int64",
        "addition_id": "Int64",
        "huntress_quantity": "Int64",
        "previous_quantity": "Float64",
        "new_quantity": "Int64",
        "outcome": "string",  # change | unchanged | not_applicable | quarantined (before push)
        "reason_code": "string",
        "detail": "string",
        # The override that decided the quantity (billing_overrides.id) and how it reads
        # ("minimum 10 by Jane Doe"); <NA> when none applied.
        "override_id": "Int64",
        "override": "string",
        # Money, as Decimal text (billing_sync.money): exact whatever the database does with floats.
        "unit_price": "string",  # the live addition's unitPrice, as read
        "catalog_price": "string",  # the catalog item's price, as read
        # change / unchanged: unit_price × (new − previous); an approved key priced at its approved
        # quantity, a created addition at the catalog price × its quantity (reconcile/approvals.py)
        "monthly_amount_delta": "string",
        "amount_at_stake": "string",  # quarantined: price × |aimed-for − ConnectWise|, price known
        # The billing_approvals row a person approved this change or new addition with; <NA> when none.
        "approval_id": "Int64",
        # The quantity the run aims for, the guard judged and an approval must name: Huntress's
        # count, or what an override makes of it (revision 0006); <NA> without a usable count.
        "target": "Int64",
    },
}


def empty(name: str) -> pd.DataFrame:
    return conform(pd.DataFrame(columns=list(SCHEMAS[name])), name)


def conform(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Return `df` with exactly the schema's columns, in order, with the schema's dtypes."""
    schema = SCHEMAS[name]
    out = pd.DataFrame(index=df.index)
    for col, dtype in schema.items():
        series = df[col] if col in df.columns else pd.Series(pd.NA, index=df.index, dtype="object")
        if dtype.startswith("datetime64"):
            out[col] = pd.to_datetime(series, utc=True, errors="coerce").astype(dtype)
        elif dtype == "boolean":
            out[col] = series.astype("object").where(series.notna(), None).astype("boolean")
        else:
            out[col] = series.astype(dtype)
    return out.reset_index(drop=True)


def parse_count(value: object) -> int | None:
    """A Huntress usage count, or None when it is not a plain non-negative integer.

    Strings ("12"), floats (2.5, and 12.0 too), booleans and out-of-range numbers are refused:
    a count that is not exactly what the API documents is quarantined, never guessed.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= MAX_USAGE else None


def raw_text(value: object, present: bool = True) -> str | None:
    if not present:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def usage_frame(invoice_id: int, lines: Iterable[UsageLine], products: Iterable[str]) -> pd.DataFrame:
    """Organization usage line items → the `usage` frame (one row per line × product)."""
    products = list(products)
    rows = []
    for line in lines:
        org = line.get("organization")
        org = org if isinstance(org, Mapping) else {}  # absent, null, or not an object: no organization id
        usage = line.get("actual_usage")
        # Absent or null actual_usage: every product is absent. Anything else that is no object is
        # broken, not absent: each product carries it, so it is never read as a count of 0.
        broken = usage is not None and not isinstance(usage, Mapping)
        usage = usage if isinstance(usage, Mapping) else {}
        for product in products:
            value = line.get("actual_usage") if broken else usage.get(product)
            rows.append(
                {
                    "invoice_id": invoice_id,
                    "line_id": _int_or_none(line.get("id")),
                    "organization_id": _int_or_none(org.get("id")),
                    "organization_name": _str_or_none(org.get("name")),
                    "product": product,
                    "raw_quantity": raw_text(value, broken or product in usage),
                    # A broken line's value is no product's count, even a whole number (`7`).
                    "quantity": None if broken else parse_count(value),
                }
            )
    return conform(pd.DataFrame(rows, columns=list(SCHEMAS["usage"])), "usage")


def organizations_frame(orgs: Iterable[Organization]) -> pd.DataFrame:
    rows = [
        {
            "organization_id": _int_or_none(o.get("id")),
            "name": _str_or_none(o.get("name")),
            "key": _str_or_none(o.get("key")),
            "account_id": _int_or_none(o.get("account_id")),
            "unreadable": _str_or_none(o.get("unreadable")),
        }
        for o in orgs
    ]
    # The same record twice (pages that overlap) is one organization; differing records stay for the checks.
    df = pd.DataFrame(rows, columns=list(SCHEMAS["organizations"])).drop_duplicates()
    return conform(df, "organizations")


def companies_frame(companies: Iterable[Company]) -> pd.DataFrame:
    rows = [
        {
            "company_id": _int_or_none(c.get("id")),
            "identifier": _str_or_none(c.get("identifier")),
            "name": _str_or_none(c.get("name")),
        }
        for c in companies
        if not c.get("deletedFlag")
    ]
    return conform(pd.DataFrame(rows, columns=list(SCHEMAS["companies"])), "companies")


def catalog_frame(items: Iterable[CatalogItem]) -> pd.DataFrame:
    """Catalog items (`/procurement/catalog`) → the `catalog` frame."""
    rows = [
        {
            "catalog_item_id": _int_or_none(c.get("id")),
            "identifier": _str_or_none(c.get("identifier")),
            "description": _str_or_none(c.get("description")),
            "price": _number_or_none(c.get("price")),
            "inactive": c.get("inactiveFlag") if isinstance(c.get("inactiveFlag"), bool) else None,
        }
        for c in items
    ]
    return conform(pd.DataFrame(rows, columns=list(SCHEMAS["catalog"])), "catalog")


def agreements_frame(agreements: Iterable[Agreement]) -> pd.DataFrame:
    """Agreements (`/finance/agreements`) → the `agreements` frame."""
    rows = [
        {
            "agreement_id": _int_or_none(a.get("id")),
            "company_id": _int_or_none(_ref(a.get("company"), "id")),
            "name": _str_or_none(a.get("name")),
            "type": _str_or_none(_ref(a.get("type"), "name")),
            "status": _str_or_none(a.get("agreementStatus")),
            "cancelled": a.get("cancelledFlag") if isinstance(a.get("cancelledFlag"), bool) else None,
            "start_date": a.get("startDate"),
            "end_date": a.get("endDate"),
        }
        for a in agreements
    ]
    return conform(pd.DataFrame(rows, columns=list(SCHEMAS["agreements"])), "agreements")


def additions_frame(agreements: Mapping[int, Agreement], additions: Iterable[Addition]) -> pd.DataFrame:
    """Additions joined with their agreement (`agreements` keyed by agreement id)."""
    rows = []
    for a in additions:
        agreement_id = _int_or_none(a.get("agreementId"))
        ag = agreements.get(agreement_id, {}) if agreement_id is not None else {}
        unreadable = [
            f
            for record, fields in ((ag, ("startDate", "endDate")), (a, ("effectiveDate", "cancelledDate")))
            for f in fields
            if not _date_readable(record.get(f))
        ]
        rows.append(
            {
                "addition_id": _int_or_none(a.get("id")),
                "agreement_id": agreement_id,
                "company_id": _int_or_none(_ref(ag.get("company"), "id")),
                "agreement_name": _str_or_none(ag.get("name")),
                "agreement_type": _str_or_none(_ref(ag.get("type"), "name")),
                "agreement_status": _str_or_none(ag.get("agreementStatus")),
                "agreement_cancelled": ag.get("cancelledFlag")
                if isinstance(ag.get("cancelledFlag"), bool)
                else None,
                "agreement_start_date": ag.get("startDate"),
                "agreement_end_date": ag.get("endDate"),
                "product_identifier": _str_or_none(_ref(a.get("product"), "identifier")),
                "quantity": _number_or_none(a.get("quantity")),
                "unit_price": _number_or_none(a.get("unitPrice")),
                "effective_date": a.get("effectiveDate"),
                "cancelled_date": a.get("cancelledDate"),
                "addition_status": _str_or_none(a.get("agreementStatus")),
                "unreadable_dates": ",".join(unreadable) or None,
            }
        )
    return conform(pd.DataFrame(rows, columns=list(SCHEMAS["additions"])), "additions")


def _date_readable(value: object) -> bool:
    """Absent (None or "") or an ISO 8601 date-time as ConnectWise writes them."""
    if value is None or value == "":
        return True
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _ref(ref: object, key: str) -> object:
    """A field of a reference (`company`, `type`, `product`): None unless the reference is an object."""
    return ref.get(key) if isinstance(ref, Mapping) else None


def _int_or_none(value: object) -> int | None:
    # An id beyond 64 bits fits no staging column (and no real API's ids): absent, not a crash.
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -(2**63) <= value < 2**63 else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _number_or_none(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
