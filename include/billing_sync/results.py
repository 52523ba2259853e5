"""The typed results of a run: what its steps return, what billing_runs.checks holds, what is shown.

What the report and the alerts read is typed here too.

TypedDicts, so each travels as the plain JSON object it always was (XCom, the checks column) while
every signature says what it holds. Amounts are Decimal text (billing_sync.money), exact in JSON.
A stored run is read back as recorded: a run recorded by an older release may lack a field its
type names, so readers of stored checks keep reading them with `.get`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, NotRequired, TypedDict

from .runref import Mode

if TYPE_CHECKING:
    from typing_extensions import ReadOnly  # typing has it from Python 3.13


# -- the totals check (reconcile.totals.totals_check) ----------------------------------------------
class ProductCheck(TypedDict):
    """One (product, catalog item) line: what Huntress counts against what ConnectWise bills, in units."""

    huntress: int
    connectwise_before: float
    connectwise_after: float
    difference: float


class UnreadableAccount(TypedDict):
    """A Huntress account whose organizations could not be read, and why."""

    account_id: int
    detail: str


class InvoiceQuantityCheck(TypedDict):
    invoice: object  # the invoice's own quantity, as Huntress sent it
    sum_of_line_edr: int
    invalid_edr_lines: int


class TotalsCheck(TypedDict):
    """Per line (keyed by its name, billing_sync.catalog) the units on both sides, and what differs."""

    products: dict[str, ProductCheck]
    mismatches: list[str]
    unreadable_accounts: list[UnreadableAccount]
    invoice_quantity: NotRequired[InvoiceQuantityCheck]  # only when the invoice states one and edr is billed


# -- the money (reconcile.money.money_totals, reconcile.totals.run_money) --------------------------
class ProductMoney(TypedDict):
    """One line's money (Decimal text); the units are added by run_money from the totals check."""

    huntress_amount: str | None
    connectwise_amount_before: str | None
    connectwise_amount_after: str | None
    difference: str | None
    recovered: str | None
    planned: str | None
    unpriced_units: str | None
    huntress_units: NotRequired[int | None]
    connectwise_units_before: NotRequired[float | None]
    connectwise_units_after: NotRequired[float | None]


class HeldReason(TypedDict):
    """The open quarantine rows of one reason, summed exactly (store.held_totals)."""

    reason_code: str
    rows: int
    priced_rows: int
    amount: Decimal


class HeldTotals(TypedDict):
    """What is held in quarantine rows, by reason and in all (store.held_totals)."""

    reasons: list[HeldReason]
    rows: int
    priced_rows: int
    amount: Decimal


class RecordedHeldReason(TypedDict):
    """A `HeldReason` as a run records it: its amount as Decimal text."""

    reason_code: str
    rows: int
    priced_rows: int
    amount: str | None


class RecordedHeld(TypedDict):
    """`HeldTotals` as a run records it (`billing_runs.checks.money.held`)."""

    reasons: list[RecordedHeldReason]
    rows: int
    priced_rows: int
    amount: str | None


class MoneyTotals(TypedDict):
    """The money of a run: per line, and the run's sums (Decimal text); what is held once recorded."""

    products: dict[str, ProductMoney]
    recovered: str | None
    planned: str | None
    huntress_amount: str | None
    connectwise_amount_after: str | None
    held: NotRequired[RecordedHeld]  # run_money adds it; money_totals alone has none


# -- what billing_runs.checks holds ----------------------------------------------------------------
class NewOrganization(TypedDict):
    """An organization on the run's invoice that no other run recorded (store.new_organizations)."""

    id: int
    name: str | None


class RequestStats(TypedDict):
    """Requests an API client made, by method and endpoint, and its retries (http.RequestStats)."""

    total: int
    by_endpoint: dict[str, int]
    retries: dict[str, int]


class ApplyRequests(TypedDict):
    huntress: RequestStats
    connectwise: RequestStats | None  # None when no company was involved (no client was built)


class RecordedChecks(TypedDict, total=False):
    """What a billing_runs row's `checks` holds, by how the run ended.

    A full run (steps.record_run): the totals check (`products`, `mismatches`,
    `unreadable_accounts`, `invoice_quantity`), `money`, `new_organizations`. An apply (apply.run):
    `base_run_id`, `money`, `requests`. A run whose task failed for good (steps.mark_run_failed):
    `failed_task`. None of them yet while a run is running; a run of an older release may lack a
    key a newer one records.
    """

    products: dict[str, ProductCheck]
    mismatches: list[str]
    unreadable_accounts: list[UnreadableAccount]
    invoice_quantity: InvoiceQuantityCheck
    money: MoneyTotals
    new_organizations: list[NewOrganization]
    base_run_id: str
    requests: ApplyRequests
    failed_task: str


# -- what the steps return -------------------------------------------------------------------------
class HuntressExtract(TypedDict):
    lines: int
    organizations: int
    unreadable_accounts: list[int]
    requests: RequestStats


class ConnectWiseExtract(TypedDict):
    companies: int
    agreements: int
    additions: int
    missing_catalog_items: list[str]
    requests: RequestStats
    codebase: str | None


class ValidationSummary(TypedDict):
    validation_path: str
    failed_rows_by_suite: dict[str, int]


class RunResult(TypedDict):
    """What steps.record_run returns: the run's counts and checks, where its report is."""

    counts: dict[str, int]
    checks: RecordedChecks
    report_dir: str
    mode: Mode
    report: str


class FinishedRun(TypedDict, total=False):
    """What an alert reads of a finished run: record_run's `RunResult`, or any part of it (a caller
    may know only some of it). Read-only, so a `RunResult` is one."""

    counts: ReadOnly[dict[str, int]]
    checks: ReadOnly[RecordedChecks]
    mode: ReadOnly[Mode]
    report: ReadOnly[str]


class RunReference(TypedDict):
    """record_run's XCom: a reference to the recorded run, never its data."""

    counts: dict[str, int]
    mode: Mode
    report_dir: str
    report: str
    new_organizations: int
    totals_equal: bool


class NewOrganizationsEvent(TypedDict):
    """The extra of the run's `billing_sync://new_organizations` asset event (docs/contract.md §1)."""

    organization_ids: list[int]
    billing_date: str
    run_id: str
    tenant: str
    mode: str


class ApplyResult(TypedDict):
    """What apply.run returns: the keys one decision touched and what became of them."""

    run_id: str
    base_run_id: str
    mode: Mode
    companies: list[int]
    keys: list[str]
    counts: dict[str, int]
    pushed: dict[str, int]


class ReportSummary(TypedDict, total=False):
    """What a run hands report.write_report: its counts and checks (else read from its row), links."""

    counts: dict[str, int]
    checks: RecordedChecks
    links: dict[str, str]  # runtime.run_links: `airflow_run`, `report_page`
