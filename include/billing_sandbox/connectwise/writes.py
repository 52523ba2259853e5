"""The writable fields of an agreement addition and how written values are checked."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from billing_sandbox.conditions import (
    canonical_datetime,
)

from .errors import ApiError, invalid
from .query import Collection
from .records import _product_ref
from .values import _num

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


def _coerce_text(field: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _field_error(field, "InvalidField", f"The field {field} must be a string.")
    if len(value) > 4000:
        raise _field_error(field, "MaxLengthField", f"The field {field} must be at most 4000 characters.")
    return value


def _coerce_flag(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _field_error(field, "InvalidField", f"The field {field} must be true or false.")
    return value


def _coerce_bill(field: str, value: Any) -> Any:
    if value not in BILL_CUSTOMER:
        raise _field_error(
            field,
            "InvalidField",
            f"The field billCustomer must be one of {', '.join(BILL_CUSTOMER)}.",
        )
    return value


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
            return _coerce_text(field, value)
        if kind == "flag":
            return _coerce_flag(field, value)
        if kind == "bill":
            return _coerce_bill(field, value)
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
