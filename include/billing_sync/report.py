"""What a run did, for people: the reconciliation report (HTML + CSV) and the text summary.

`write_report` fills the run's report directory (`run_directory`):
    report.html      one self-contained page (inline CSS, no scripts, no external assets)
    changes.csv      the ledger rows of the run (billing_changes) + company name, the override as it
                     reads, and `decided_by` (the approval or override behind the change: decided_by.py)
    quarantine.csv   the quarantine rows this run recorded (billing_quarantine) + company name, what to do
    totals.csv       Huntress vs ConnectWise totals per product, before and after the push
    outcomes.csv     one row per sync key with its `decided_by` (written by steps.record_run; linked here)
    validation.json  the GX results (written by steps.validate; linked here)
Everything comes from the billing database, which holds no connection data, so neither can the
report. Every value is HTML-escaped by Jinja's autoescape: names come from Huntress and ConnectWise.
Every CSV goes through `csvfile`, which defuses text cells that a spreadsheet would run as formulas.
The page's chart (Huntress vs ConnectWise units per product) is inline SVG from `charts`, sanitized
there; when it cannot be drawn the page says so and the totals table still holds every number.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict

import jinja2
import pandas as pd
from sqlalchemy.engine import Engine

from . import billing_gap, charts, csvfile, money, runtime, store, tenants
from .catalog import Products, find_line
from .decided_by import decided_by
from .names import (
    CONTRACT_OUTCOMES,
    OUTCOMES,
    PUSH_OUTCOMES,
    REASON_CODES,
    REASON_HELP,
    reason_label,
    reason_rank,
)
from .results import HeldTotals, MoneyTotals, RecordedChecks, RecordedHeld, ReportSummary
from .runref import InvoicedRunRef, InvoiceSummary
from .store.records import LedgerRow, QuarantineRow

REPORT_FILE = "report.html"
CHANGES_CSV = "changes.csv"
QUARANTINE_CSV = "quarantine.csv"
TOTALS_CSV = "totals.csv"
OUTCOMES_CSV = "outcomes.csv"
LEDGER_MONEY = ("unit_price", "monthly_amount_delta")
QUARANTINE_MONEY = ("amount_at_stake",)
VALIDATION_JSON = "validation.json"

MODE_HELP = {
    "push": "changes were written to ConnectWise",
    "dry_run": "dry run: nothing was written to ConnectWise",
    "report_only": "report only: the invoice is older than the newest one, nothing was written",
}
# Every outcome of OUTCOMES and PUSH_OUTCOMES.
OUTCOME_ORDER = (*CONTRACT_OUTCOMES, "failed", "change", "create")
TOTALS_COLUMNS = (
    "product",
    "catalog_identifier",
    "huntress",
    "connectwise_before",
    "connectwise_after",
    "difference",
)
MAX_HTML_ROWS = 1000  # per table: a page a browser still opens; the CSVs always hold every row
CHART_FAILED = "The chart could not be drawn (the task log says why); the table below holds the numbers."
log = logging.getLogger(__name__)


# -- where -----------------------------------------------------------------------------------------
READABLE_MAX = 80  # characters of the run id kept readable in its folder name
DIGEST_CHARS = 12  # hex characters of the run id's SHA-256 in its folder name


def run_directory(billing_date: str, run_id: str, tenant: str) -> Path:
    """The report directory of a run (created): <reports root>/<billing date>/<run_folder_name>; a
    tenant's other than the default's folder name starts `<tenant>__` (every tenant's DAG has the
    same run ids).

    The billing date must be an ISO date. The path is checked to lie inside the reports root, so no
    run id (".", "..", "../x", "/etc") can write anywhere else.
    """
    day = date.fromisoformat(billing_date).isoformat()  # ValueError for anything but a date
    root = runtime.reports_root()
    folder = run_folder_name(run_id)
    path = (
        root / day / (folder if tenant == store.DEFAULT_TENANT else f"{tenants.check_id(tenant)}__{folder}")
    )
    if path.resolve().parent != (root / day).resolve() or not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"report folder {path} would lie outside the reports root {root}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_folder_name(run_id: str) -> str:
    """The run's folder name: `<run id, made readable>-<12 hex of the run id's SHA-256>`.

    Readable part: ASCII letters, digits, `-`, `_` and `.` kept, every other character `_`, leading
    dots dropped, at most READABLE_MAX characters; `run` when nothing is left. The digest is of the
    exact run id, so two run ids never share a folder (`a:b` and `a_b` do not), and the name is never
    `.`, `..`, empty, or a dot-file, and holds no separator.
    Example: `manual__2026-11-01T00:00:00+00:00` → `manual__2026-11-01T00_00_00_00_00-<digest>`.
    """
    readable = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in run_id)
    readable = readable.lstrip(".")[:READABLE_MAX] or "run"
    digest = hashlib.sha256(run_id.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_CHARS]
    return f"{readable}-{digest}"


# -- the data ------------------------------------------------------------------------------------
class ChangeView(LedgerRow):
    """A ledger row as the report shows it."""

    company_name: str | None
    override: str | None  # how the override that decided its quantity reads
    decided_by: str | None


class QuarantineView(QuarantineRow):
    """A quarantine row as the report shows it."""

    company_name: str | None
    what_to_do: str | None


class RunView(TypedDict):
    """The run's row as the page heads it (from the reference where the row is not recorded yet)."""

    tenant: str
    run_id: str
    billing_date: str
    invoice_id: int | None
    invoice: InvoiceSummary | dict[str, None]  # {} when the reference has no invoice
    mode: str | None
    status: str | None
    started_at: datetime | None
    finished_at: datetime | None


class LineOf(TypedDict):
    product: str
    catalog_identifier: str | None


class TotalsRow(LineOf):
    """One line of the totals check, as totals.csv and the page's table show it."""

    huntress: int | None
    connectwise_before: float | None
    connectwise_after: float | None
    difference: float | None


class Gap(TypedDict):
    gap: str  # under | over | ''
    gap_label: str


class MoneyRow(LineOf, Gap):
    """One line's money for people (amounts with two decimals)."""

    line: str
    huntress_units: Any  # `_num`: a count, or '' when unknown
    huntress_amount: str
    connectwise_units: Any
    connectwise_amount: str
    difference: str
    recovered: str
    unpriced_units: Any
    differs: bool


class HeldLine(TypedDict):
    reason_code: str
    label: str
    rows: int
    priced_rows: int
    unpriced_rows: int
    amount: str


class HeldView(TypedDict):
    held: list[HeldLine]
    held_amount: str
    held_rows: int
    held_unpriced: int


class MoneyView(Gap, HeldView):
    """The money of a run for people (`money_view`)."""

    products: list[MoneyRow]
    huntress_amount: str
    connectwise_amount: str
    recovered: str
    planned: str
    has_planned: bool
    connectwise_before: str
    difference: str


class ReportData(TypedDict):
    """Everything the page and the CSVs show (`collect`)."""

    run: RunView
    counts: dict[str, int]
    checks: RecordedChecks
    totals: list[TotalsRow]
    money: MoneyView | None
    changes: list[ChangeView]
    quarantine: list[QuarantineView]
    links: dict[str, str]


def collect(eng: Engine, ref: InvoicedRunRef, summary: ReportSummary) -> ReportData:
    """Everything the page and the CSVs show, read once."""
    run_id, tenant = ref["run_id"], ref["tenant"]
    run = store.get_run(eng, run_id, tenant=tenant)
    companies = _company_names(eng, run_id, tenant)
    counts = dict(summary.get("counts") or (run["counts"] if run else None) or {})
    recorded = summary.get("checks") or (run["checks"] if run else None)
    checks: RecordedChecks = recorded.copy() if recorded else {}
    overrides = _override_texts(eng, run_id, tenant)
    ledger = store.changes_for_run(eng, run_id, tenant=tenant)
    changes: list[ChangeView] = [
        {
            **c,
            "unit_price": _exact(c["unit_price"]),
            "monthly_amount_delta": _exact(c["monthly_amount_delta"]),
            "company_name": _company(companies, c["cw_company_id"]),
            "override": overrides.get(c["sync_key"]),
            "decided_by": who,
        }
        for c, who in zip(ledger, decided_by(eng, ledger, tenant=tenant), strict=True)
    ]
    quarantine: list[QuarantineView] = [
        {
            **q,
            "amount_at_stake": _exact(q["amount_at_stake"]),
            "company_name": _company(companies, q["cw_company_id"]),
            "what_to_do": REASON_HELP.get(q["reason_code"]),
        }
        for q in store.list_quarantine(eng, run_id=run_id, limit=None, tenant=tenant)
    ]
    quarantine.sort(
        key=lambda q: (
            reason_rank(q["reason_code"]),
            -(
                q["amount_at_stake"] if q["amount_at_stake"] is not None else Decimal(-1)
            ),  # most at stake first
            str(q["huntress_organization_name"] or ""),
            str(q["sync_key"]),
        )
    )
    # A report also renders from a partial reference (settings or invoice not there): read it as one.
    products = (ref.get("settings") or {}).get("products") or {}
    invoice = ref.get("invoice")
    return {
        "run": {
            "tenant": tenant,
            "run_id": run_id,
            "billing_date": str((run and run["billing_date"]) or ref["billing_date"]),
            "invoice_id": run["invoice_id"] if run else ref.get("invoice_id"),
            "invoice": invoice if invoice is not None else {},
            "mode": (run and run["mode"]) or ref.get("mode"),
            "status": run["status"] if run else None,
            "started_at": run["started_at"] if run else None,
            "finished_at": run["finished_at"] if run else None,
        },
        "counts": counts,
        "checks": checks,
        "totals": totals_rows(checks, products),
        "money": money_view(checks.get("money"), products),
        "changes": changes,
        "quarantine": quarantine,
        "links": dict(summary.get("links") or {}),
    }


def _override_texts(eng: Engine, run_id: str, tenant: str) -> dict[str, str]:
    """sync key → the override that decided its quantity ("minimum 10 by Jane Doe (override 3)"),
    from the run's staged outcomes (gone once staging is purged: the ledger's override_id stays)."""
    frame = store.read_frame(eng, run_id, "outcomes", tenant=tenant).dropna(subset=["override"])
    return {str(k): str(t) for k, t in zip(frame["sync_key"], frame["override"], strict=True)}


def _exact(amount: Decimal | None) -> Decimal | None:
    """An amount as the exact Decimal it is (a NUMERIC read back from SQLite carries trailing zeros:
    4.7500000000 reads 4.75 again)."""
    text = money.text(amount)
    return None if text is None else Decimal(text)


def _company(companies: Mapping[int, str], company_id: int | None) -> str | None:
    return None if company_id is None else companies.get(company_id)


def money_view(
    totals: MoneyTotals | None,
    products: Products | None = None,
    held: HeldTotals | RecordedHeld | None = None,
) -> MoneyView | None:
    """The money of a run for people (every amount with two decimals): per product Huntress vs
    ConnectWise in units and money, what the run recovered, and what is still held by reason. One row
    per (product, catalog item) line: `line` its name (billing_sync.catalog), `product` and
    `catalog_identifier` what it is, by the run's recorded `products`.
    `totals` is what record_run recorded (`billing_runs.checks["money"]`); `held` replaces its
    held part with a fresher one (`store.held_totals`). None when the run recorded no money."""
    if not totals:
        return None
    if held is None:
        held = totals.get("held")
    rows: list[MoneyRow] = []
    for name, t in (totals.get("products") or {}).items():
        rows.append(
            {
                "line": name,
                **_line_of(name, products),
                "huntress_units": _num(t.get("huntress_units")),
                "huntress_amount": money.fmt(t.get("huntress_amount")),
                "connectwise_units": _num(t.get("connectwise_units_after")),
                "connectwise_amount": money.fmt(t.get("connectwise_amount_after")),
                "difference": money.signed(t.get("difference")),
                "recovered": money.signed(t.get("recovered")),
                "unpriced_units": _num(t.get("unpriced_units"))
                if money.amount(t.get("unpriced_units"))
                else "",
                "differs": bool(money.amount(t.get("difference"))),
                **_gap(t.get("difference")),
            }
        )
    befores = [
        money.amount(t.get("connectwise_amount_before")) for t in (totals.get("products") or {}).values()
    ]
    # A run recorded before `connectwise_amount_before` existed has no "before": none is shown.
    before = money.total(befores) if befores and None not in befores else None
    after, huntress = (
        money.amount(totals.get("connectwise_amount_after")),
        money.amount(totals.get("huntress_amount")),
    )
    difference = after - huntress if after is not None and huntress is not None else None
    return {
        "products": rows,
        "huntress_amount": money.fmt(totals.get("huntress_amount")),
        "connectwise_amount": money.fmt(totals.get("connectwise_amount_after")),
        "recovered": money.signed(totals.get("recovered"), "0.00"),
        "planned": money.signed(totals.get("planned"), "0.00"),
        "has_planned": bool(money.amount(totals.get("planned"))),
        # The month before → after the run: what ConnectWise billed, against what Huntress counts.
        "connectwise_before": money.fmt(before),
        "difference": money.signed(difference),
        **_gap(difference),
        **held_view(held),
    }


def _gap(difference: object) -> Gap:
    """`gap` (under / over / '') and `gap_label` of ConnectWise − Huntress."""
    kind = billing_gap.of_difference(difference)
    return {"gap": kind, "gap_label": billing_gap.LABELS.get(kind, "")}


def held_view(held: HeldTotals | RecordedHeld | None) -> HeldView:
    """What is held (`store.held_totals`, or the `held` a run recorded) for people: `held` (per
    reason: rows, priced and unpriced rows, the amount), `held_amount`, `held_rows`, `held_unpriced`.
    None (a run recorded without it) reads as nothing held."""
    if held is None:
        return {"held": [], "held_amount": money.fmt(None, "0.00"), "held_rows": 0, "held_unpriced": 0}
    return {
        "held": [
            {
                "reason_code": r["reason_code"],
                "label": reason_label(r["reason_code"]),
                "rows": r["rows"],
                "priced_rows": r["priced_rows"],
                "unpriced_rows": r["rows"] - r["priced_rows"],
                # No row with an amount: no sum to show (0.00 would say nothing is at stake).
                "amount": money.fmt(r["amount"]) if r["priced_rows"] else "—",
            }
            for r in held.get("reasons") or []
        ],
        "held_amount": money.fmt(held.get("amount"), "0.00"),
        "held_rows": held.get("rows") or 0,
        "held_unpriced": (held.get("rows") or 0) - (held.get("priced_rows") or 0),
    }


def _company_names(eng: Engine, run_id: str, tenant: str) -> dict[int, str]:
    """Company names from the run's staged ConnectWise companies (gone once staging is purged)."""
    frame = store.read_frame(eng, run_id, "companies", tenant=tenant).dropna(subset=["company_id", "name"])
    return {int(i): str(n) for i, n in zip(frame["company_id"], frame["name"], strict=True)}


def totals_rows(checks: RecordedChecks, products: Products | None = None) -> list[TotalsRow]:
    """The totals check, one row per (product, catalog item) line (keyed by its name in `checks`)."""
    return [
        {
            **_line_of(name, products),
            "huntress": t.get("huntress"),
            "connectwise_before": t.get("connectwise_before"),
            "connectwise_after": t.get("connectwise_after"),
            "difference": t.get("difference"),
        }
        for name, t in (checks.get("products") or {}).items()
    ]


def _line_of(name: str, products: Products | None) -> LineOf:
    """`product` and `catalog_identifier` of a totals key, by the run's recorded `products`; a key
    those products do not name (settings not recorded) reads as a product of unknown item."""
    line = find_line(name, products)
    return {
        "product": line.product if line else name,
        "catalog_identifier": line.catalog_identifier if line else None,
    }


class OutcomeRow(TypedDict):
    outcome: str
    count: int
    meaning: str


def outcome_rows(counts: Mapping[str, int]) -> list[OutcomeRow]:
    meaning = {**OUTCOMES, **PUSH_OUTCOMES}
    return [
        {"outcome": o, "count": counts[o], "meaning": meaning.get(o, "")}
        for o in OUTCOME_ORDER
        if o in counts and (counts[o] or o in ("updated", "unchanged", "quarantined"))
    ]


class ReasonGroup(TypedDict):
    """The quarantine rows of one reason, with what the reason means and what to do about it."""

    code: str
    label: str
    meaning: str
    help: str
    rows: list[QuarantineRow]
    shown: list[QuarantineRow]  # at most MAX_HTML_ROWS
    open: int


def reason_groups(quarantine: Sequence[QuarantineRow]) -> list[ReasonGroup]:
    """Quarantine rows grouped by reason, in the contract's order, each with what to do about it."""
    groups: dict[str, list[QuarantineRow]] = {}
    for q in quarantine:
        groups.setdefault(q["reason_code"], []).append(q)
    return [
        {
            "code": code,
            "label": reason_label(code),
            "meaning": REASON_CODES.get(code, ""),
            "help": REASON_HELP.get(code, ""),
            "rows": rows,
            "shown": rows[:MAX_HTML_ROWS],
            "open": sum(1 for r in rows if r["status"] == "open"),
        }
        for code, rows in sorted(groups.items(), key=lambda kv: reason_rank(kv[0]))
    ]


# -- writing -------------------------------------------------------------------------------------
def write_report(
    eng: Engine, ref: InvoicedRunRef, summary: ReportSummary, directory: Path | None = None
) -> Path:
    """Write the CSVs and report.html of the run into its report directory; returns report.html.

    `summary` carries what record_run computed: `counts`, `checks`, and optionally `links`
    (`airflow_run`, `report_page` URLs). The run's row (status, times) is read from the database.
    """
    if directory is None:
        directory = run_directory(ref["billing_date"], ref["run_id"], ref["tenant"])
    data = collect(eng, ref, summary)
    csvfile.write_rows(
        directory / CHANGES_CSV,
        data["changes"],
        [*_columns(store.changes), "company_name", "override", "decided_by"],
    )
    csvfile.write_rows(
        directory / QUARANTINE_CSV,
        data["quarantine"],
        [*_columns(store.quarantine), "company_name", "what_to_do"],
    )
    csvfile.write_rows(directory / TOTALS_CSV, data["totals"], TOTALS_COLUMNS)
    files = [
        name
        for name in (CHANGES_CSV, QUARANTINE_CSV, TOTALS_CSV, OUTCOMES_CSV, VALIDATION_JSON)
        if (directory / name).exists()
    ]
    path = directory / REPORT_FILE
    path.write_text(render_html(data, files), encoding="utf-8")
    return path


def _columns(table: Any) -> list[str]:
    return [c.name for c in table.columns]


def _missing(value: Any) -> bool:
    """None, NaN, pandas NA/NaT; never a container or text."""
    return value is None or (
        not isinstance(value, str | bytes | dict | list | tuple) and bool(pd.isna(value))
    )


# -- the page ------------------------------------------------------------------------------------
def render_html(data: ReportData, files: Sequence[str] = ()) -> str:
    changes = data["changes"]
    shown = [c for c in changes if c["action"] != "unchanged"]
    context = {
        **data,
        "mode_help": MODE_HELP.get(str(data["run"]["mode"]), ""),
        "outcomes": outcome_rows(data["counts"]),
        "groups": reason_groups(data["quarantine"]),
        "shown_changes": shown[:MAX_HTML_ROWS],
        "hidden_changes": max(0, len(shown) - MAX_HTML_ROWS),
        "unchanged": sum(1 for c in changes if c["action"] == "unchanged"),
        "files": files,
    }
    context["chart"], context["chart_error"] = run_chart(data)
    return _TEMPLATE.render(**context)


def run_chart(data: ReportData) -> tuple[charts.Chart | None, str | None]:
    """The run's picture: per product, Huntress units vs ConnectWise before and after the push, and
    the amount held in the run's quarantine rows once they carry one. (None, None) without product
    totals; (None, a fixed message) when drawing failed: a chart never costs the run its report."""
    rows = charts.with_held(charts.product_rows(data["checks"]), charts.held_by_product(data["quarantine"]))
    try:
        return charts.run_chart(rows), None
    except charts.ChartError:
        log.warning("report chart not drawn", exc_info=True)
        return None, CHART_FAILED


def _num(v: Any) -> Any:
    if _missing(v):
        return ""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _delta(new: Any, old: Any) -> str:
    if _missing(new) or _missing(old):
        return ""
    d = float(new) - float(old)
    return f"{_num(d):+}" if d else "0"


def _when(v: Any) -> str:
    if isinstance(v, datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S %Z").strip()
    return "" if _missing(v) else str(v)


# Autoescape on for every value; a missing key renders empty rather than losing the whole report.
_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("billing_sync", "templates"),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(num=_num, when=_when, money=money.fmt)
_ENV.globals.update(delta=_delta)

_TEMPLATE = _ENV.get_template("report.html")


# -- the text summary (CLI) ------------------------------------------------------------------------
def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_summary_text(eng: Engine, billing_date: str, run_id: str | None = None, *, tenant: str) -> str:
    """The tenant's newest run of `billing_date` (or `run_id`): outcomes, reasons, changes, checks."""
    if run_id:
        run = store.get_run(eng, run_id, tenant=tenant)
    else:
        run = next(iter(store.list_runs(eng, limit=1, billing_date=billing_date, tenant=tenant)), None)
    if not run:
        return f"no run recorded for billing date {billing_date}"
    counts = run.get("counts") or {}
    out = [
        f"Run {run['run_id']}  billing date {run['billing_date']}  invoice {run['invoice_id']}  "
        f"mode {run['mode']}  status {run['status']}",
        "",
    ]
    rows = [[k, counts.get(k, 0)] for k in CONTRACT_OUTCOMES if counts.get(k)]
    rows += [
        [f"  {reason_label(code)} ({code})", n] for code, n in counts.items() if code in REASON_CODES and n
    ]
    out.append(_table(["outcome (reason_code)", "sync keys"], rows + [["total", counts.get("total")]]))
    changes = [
        c for c in store.changes_for_run(eng, run["run_id"], tenant=tenant) if c["action"] != "unchanged"
    ]
    deciders = decided_by(eng, changes, tenant=tenant)
    if changes:
        out += [
            "",
            "Changes:",
            _table(
                [
                    "company",
                    "product",
                    "addition",
                    "previous",
                    "new",
                    "action",
                    "monthly amount",
                    "decided by",
                ],
                [
                    [
                        c["cw_company_id"],
                        c["product"],
                        c["addition_id"],
                        _num(c["previous_quantity"]),
                        _num(c["new_quantity"]),
                        c["action"],
                        money.signed(c.get("monthly_amount_delta")),
                        who,
                    ]
                    for c, who in zip(changes, deciders, strict=True)
                ],
            ),
        ]
    held = store.list_quarantine(eng, run_id=run["run_id"], status="open", limit=None, tenant=tenant)
    if held:
        out += [
            "",
            "Quarantine (open):",
            _table(
                ["reason", "key", "organization", "detail"],
                [
                    [
                        f"{reason_label(q['reason_code'])} ({q['reason_code']})",
                        q["sync_key"],
                        (q["huntress_organization_name"] or "")[:30],
                        (q["detail"] or "")[:90],
                    ]
                    for q in held
                ],
            ),
        ]
        out += ["", "What to do:"] + [
            f"  {g['label']} ({g['code']}): {g['help']}" for g in reason_groups(held) if g["help"]
        ]
    mismatches = (run.get("checks") or {}).get("mismatches") or []
    out += [
        "",
        "Totals check: " + ("Huntress and ConnectWise agree" if not mismatches else "; ".join(mismatches)),
    ]
    if report_path := run["report_path"]:
        page = Path(report_path) / REPORT_FILE
        out.append(f"Report: {page if page.exists() else report_path}")
    view = money_view(
        (run.get("checks") or {}).get("money"),
        (run.get("settings") or {}).get("products"),
        store.held_totals(eng, run_id=run["run_id"], status="open", tenant=tenant),
    )
    if view:  # last: what a billing manager asks first, where the eye lands
        out += ["", *money_text(view)]
    return "\n".join(out)


def money_text(view: MoneyView) -> list[str]:
    """The money of `money_view` as lines of text (the CLI summary, `make demo`)."""
    rows = [
        [
            t.get("line", t["product"]),
            t["huntress_units"],
            t["huntress_amount"],
            t["connectwise_units"],
            t["connectwise_amount"],
            t["difference"],
            t["recovered"],
        ]
        for t in view["products"]
    ]
    rows.append(["total", "", view["huntress_amount"], "", view["connectwise_amount"], "", view["recovered"]])
    lines = [
        "Money per month (units × unit price; ConnectWise after the push):",
        _table(
            [
                "product",
                "Huntress units",
                "Huntress amount",
                "ConnectWise units",
                "ConnectWise amount",
                "difference",
                "recovered",
            ],
            rows,
        ),
        f"Recovered by this run: {view['recovered']} per month",
    ]
    if view["has_planned"]:
        lines.append(f"Planned, not written: {view['planned']} per month")
    lines.append(f"Still held: {view['held_amount']} in {view['held_rows']} open quarantine row(s)")
    lines += [
        f"  {h['label']} ({h['reason_code']}): {h['amount']} ({h['rows']} row(s)"
        + (f", {h['unpriced_rows']} without a known price)" if h["unpriced_rows"] else ")")
        for h in view["held"]
    ]
    return lines
