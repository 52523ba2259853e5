"""What a person saw on the approve form: the form carries it, the POST compares it (issue 19 §2).

The numbers of an approval come from the quarantine row, and any run of the billing date refreshes
that row in place (same id, new run id and payload). A POST that named only the row approved
whatever the row held at that moment, numbers nobody saw. So the form carries, as hidden fields,
exactly what it showed: the run that computed the row, the kind, company and product, the addition,
its agreement, the from and to quantities and (a new addition) the catalog unit price. At POST the
route renders the same fields from the row as it is now; any difference, or a field missing, is a
refusal (`REFUSAL`) and nothing is recorded. The approval is then made of the numbers compared, so
it is for the numbers on the screen, and the run applies it only where it computes them exactly
(reconcile/approvals.py).

Values are compared as the text the form carries, each number in one spelling (`_number`): a whole
number without a decimal point, any other as Python's shortest round-trip form, so two different
numbers never read the same (unlike ``%g``, which shows 9,999,999 and 9,999,998 alike).
"""

import math
from typing import Annotated, NotRequired, TypedDict

from fastapi import Form

from billing_sync import store
from billing_sync.reconcile.approvals import Proposal

REFUSAL = "the numbers changed; review again"
PREFIX = "seen_"
FIELDS = (
    "run_id",
    "kind",
    "company_id",
    "product",
    "addition_id",
    "agreement_id",
    "from_quantity",
    "to_quantity",
    "unit_price",
)
VALUE_MAX = 300  # a run id is at most 250 characters (Airflow's column); anything longer is no value of ours


class Agreement(TypedDict):
    """A live agreement of the company a new addition may go on, as the row's run read it."""

    agreement_id: int
    name: str | None
    type: str | None
    carries: list[str]  # the catalog identifiers of its live Huntress additions


class Offer(TypedDict):
    """What an open held row offers on the approve form (routes/approvals.py `_offer`)."""

    approval: Proposal  # what the row lets a person approve (`reconcile.proposal`)
    agreements: list[Agreement]  # a new addition: the agreements to pick from
    price: float | None  # a new addition: the catalog item's unit price
    amount: float | None
    preselect: NotRequired[int | None]  # a new addition: the agreement picked unless one is chosen


def shown(row: store.QuarantineRow, offer: Offer) -> dict[str, str]:
    """The hidden fields of the approve form of `row` (an open quarantine row) and its `offer`
    (routes/approvals.py `_offer`): what the page shows, one text per field."""
    approval = offer["approval"]
    values: dict[str, str | int | float | None] = {
        "run_id": row["run_id"],
        "kind": approval["kind"],
        "company_id": approval["cw_company_id"],
        "product": approval["product"],
        "addition_id": approval.get("addition_id"),
        "agreement_id": approval.get("agreement_id"),
        "from_quantity": approval.get("from_quantity"),
        "to_quantity": approval["to_quantity"],
        "unit_price": offer.get("price"),
    }
    return {PREFIX + name: _text(values[name]) for name in FIELDS}


def submitted(
    seen_run_id: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_kind: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_company_id: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_product: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_addition_id: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_agreement_id: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_from_quantity: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_to_quantity: Annotated[str, Form(max_length=VALUE_MAX)] = "",
    seen_unit_price: Annotated[str, Form(max_length=VALUE_MAX)] = "",
) -> dict[str, str]:
    """The dependency of the approving POST: the hidden fields as posted (absent: empty, which
    matches nothing the form renders for a run id)."""
    posted = locals()
    return {PREFIX + name: posted[PREFIX + name] for name in FIELDS}


def matches(posted: dict[str, str], row: store.QuarantineRow, offer: Offer) -> bool:
    """Whether the POST says it saw exactly what the row offers now."""
    return posted == shown(row, offer)


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return _number(float(value))
    return str(value)


def _number(value: float) -> str:
    if math.isnan(value):
        return ""
    return str(int(value)) if value.is_integer() else repr(value)
