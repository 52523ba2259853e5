"""The run reference: what DAG tasks pass each other through XCom.

A TypedDict, so it travels as the plain JSON object it always was (XCom stores it as is) while
every signature says what it holds. `resolve` makes a `RunRef`; the invoice sensor completes it
into an `InvoicedRunRef`, which every later task takes. Settings travel as `Settings.to_dict()`.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from .config import SettingsDict

Mode = Literal["push", "dry_run", "report_only"]


class Scope(TypedDict):
    """The apply DAG's conf, checked (billing_sync.apply.parse_scope): what billing_runs.scope records."""

    billing_date: str
    companies: list[int]
    organizations: list[int]


class RunRef(TypedDict):
    tenant: str  # "default" in the single-tenant form; with run_id, names the billing run
    run_id: str
    billing_date: str  # ISO date: the DAG run's logical date in UTC
    settings: SettingsDict
    mode: Mode  # report_only only once the invoice is known (an older invoice than the newest)
    force_historical_push: bool
    invoice_id: int | None  # pinned by the invoice_id param; the chosen invoice's id once found
    # An apply's conf (billing_sync.apply; billing_runs.scope): absent or None for a full run.
    scope: NotRequired[Scope | None]


class InvoiceSummary(TypedDict):
    """The fields of the chosen Huntress invoice that the run keeps (as Huntress sent them)."""

    id: int
    created_at: Any
    quantity: Any
    amount: Any
    status: Any
    plan: Any


class InvoicedRunRef(RunRef):
    """The reference completed with its invoice (`invoice_id` is then the invoice's id)."""

    invoice: InvoiceSummary


class PushBatch(TypedDict):
    """One element of the push task's mapping: batch `batch` (from 0) of `batches`."""

    batch: int
    batches: int
