"""The rows a run hands the billing database to write, as types: quarantine and ledger rows.

A held key's quarantine row and a key's ledger row: `rows` builds them from reconcile's outcomes,
`store` takes them (`upsert_quarantine`, `record_changes`) and checks every value again before it
writes: a value from a frame may still be a numpy scalar or NA, which the store cleans. Below both, so
each may import it; imports nothing of ours. The rows the store hands back are `store.records`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, NotRequired, TypedDict


class QuarantineInput(TypedDict):
    """A held key as its quarantine row (`store.upsert_quarantine`)."""

    sync_key: str
    reason_code: str  # one of names.REASON_CODES
    huntress_organization_id: int | None  # the key's one organization, None for a company key
    huntress_organization_name: str | None
    cw_company_id: int | None
    product: str | None
    catalog_identifier: str | None
    detail: str | None
    payload: dict[str, Any] | None  # the outcome row that held the key, kept as JSON as it was
    amount_at_stake: Decimal | str | None  # Decimal or Decimal text, never a float


class LedgerInput(TypedDict):
    """A key's outcome after the push as its ledger row (`store.record_changes`)."""

    sync_key: str
    action: str  # one of store.ACTIONS
    cw_company_id: int | None
    agreement_id: int | None
    addition_id: int | None
    product: str | None
    catalog_identifier: str | None
    huntress_quantity: int | None
    previous_quantity: float | None
    new_quantity: float | None
    unit_price: Decimal | str | None  # Decimal or Decimal text, never a float
    monthly_amount_delta: Decimal | str | None
    override_id: int | None
    approval_id: int | None
    applied_at: NotRequired[datetime]  # now, when the row does not say
