"""The steps of one run, as plain functions: what each DAG task does, testable without a scheduler.

Steps share nothing in memory. Each reads its inputs from the billing database (staging tables
keyed by run id) and returns only a small JSON-able reference, so any worker can run any step and
a retried step starts from durable inputs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any, cast

import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from . import catalog, checks, csvfile, frames, reconcile, report, runtime, store
from .approving import apply_approvals, approvals_in_force, resolver, settle_approval
from .config import Settings, load_settings
from .decided_by import DecisionIds, decided_by
from .errors import ApiError, NoInvoiceError
from .huntress import (
    STANDING_STATUSES,
    created_date,
    newest_invoice_date,
    select_invoice,
    undated_invoices,
)
from .push import PushResult, push_changes
from .reconcile import totals
from .reconcile.live import live_additions
from .reconcile.totals import TO_PUSH
from .results import (
    ConnectWiseExtract,
    HuntressExtract,
    MoneyTotals,
    NewOrganizationsEvent,
    ProductCheck,
    RecordedChecks,
    RunReference,
    RunResult,
    TotalsCheck,
    ValidationSummary,
)
from .rows import OutcomeRecord, ledger_row, outcome_records, quarantine_row
from .rows import records as _records
from .runref import InvoicedRunRef, InvoiceSummary, PushBatch, RunRef
from .scrub import cut
from .sources import ConnectWiseSource, HuntressSource

log = logging.getLogger(__name__)

PUSH_BATCH_SIZE = 250
HUNTRESS_API = "huntress"  # billing_api_calls.api of the Huntress accounts


# -- environment ---------------------------------------------------------------------------------
def engine() -> Engine:
    return store.engine_for(runtime.database_url())


def reports_dir(ref: RunRef) -> Path:
    """The run's report directory (created), as report.run_directory names it."""
    return report.run_directory(ref["billing_date"], ref["run_id"], ref["tenant"])


def run_store(eng: Engine, ref: RunRef) -> store.RunStore:
    """The run's rows, bound to its tenant, run id and billing date (store.handle)."""
    return store.TenantStore(eng, ref["tenant"]).run(ref["run_id"], ref["billing_date"])


def _staged(eng: Engine, ref: RunRef, name: str) -> pd.DataFrame:
    """The run's staged frame `name` (staging is keyed by tenant and run id)."""
    return run_store(eng, ref).read_frame(name)


def _stage(eng: Engine, ref: RunRef, name: str, df: pd.DataFrame) -> int:
    return run_store(eng, ref).write_frame(name, df)


def settings_of(ref: RunRef) -> Settings:
    return load_settings(ref["settings"])


@contextmanager
def _huntress_window(eng: Engine, huntress: HuntressSource) -> Iterator[None]:
    """Requests made in the block share the Huntress account's rate-limit window with every other
    task of the account (docs/contract.md §1 Tenants): the client's limiter starts from the request
    starts its earlier tasks recorded, whatever their tenant or run, and its own are merged into
    that record when the block ends, however it ends. Each task builds a fresh client, whose first
    request would otherwise be blind, and refused (429) right after a task that filled the window.
    """
    limiter, account = huntress.api.limiter, huntress.conn_id
    if limiter is None or account is None:  # a client built by hand: nothing names its account
        yield
        return
    limiter.seed(store.recent_api_calls(eng, HUNTRESS_API, account, within_s=limiter.span))
    try:
        yield
    finally:
        try:
            store.record_api_calls(eng, HUNTRESS_API, account, limiter.starts(), within_s=limiter.span)
        except SQLAlchemyError as exc:
            # The record only spares the next task a 429 its client waits out anyway: not worth
            # failing a task that has its answers, or hiding the error a failing one raises.
            log.warning(
                "Huntress %s: its recent requests were not recorded (%s)", account, type(exc).__name__
            )


# -- 1. resolve ----------------------------------------------------------------------------------
def resolve(
    eng: Engine,
    run_id: str,
    billing_date: date,
    variable: Any,
    params: Mapping[str, Any],
    tenant: str,
) -> RunRef:
    settings = load_settings(variable, params)
    pinned = params.get("invoice_id")
    ref: RunRef = {
        "tenant": tenant,
        "run_id": run_id,
        "billing_date": billing_date.isoformat(),
        "settings": settings.to_dict(),
        "mode": "dry_run" if settings.dry_run else "push",
        "force_historical_push": bool(params.get("force_historical_push")),
        "invoice_id": int(pinned) if pinned not in (None, "") else None,
    }
    run_store(eng, ref).start(ref["invoice_id"], ref["mode"], ref["settings"], ref.get("scope"))
    return ref


# -- 2. wait for the invoice ---------------------------------------------------------------------
def find_invoice(eng: Engine, ref: RunRef, huntress: HuntressSource) -> InvoicedRunRef | None:
    """The run reference completed with its invoice, or None while the invoice is not out yet.

    Raises NoInvoiceError (a permanent error) when no invoice will ever bill the date; its subclass
    InvoiceChoiceError when the invoices cannot decide (a pinned one does not stand, two stand).
    """
    settings = settings_of(ref)
    billing_date = date.fromisoformat(ref["billing_date"])
    with _huntress_window(eng, huntress):
        invoices = huntress.invoices(settings.invoice_source)
    invoice = select_invoice(invoices, billing_date, ref["invoice_id"])
    newest = newest_invoice_date(invoices)
    if undated := undated_invoices(invoices):
        log.warning(
            "Huntress invoices without a readable created_at are ignored (pin one with the "
            "invoice_id param): %s",
            undated[:20],
        )
    if odd := [
        i.get("id")
        for i in invoices
        if i.get("status") not in (*STANDING_STATUSES, "voided", "full_refund", "draft")
    ]:
        log.warning("Huntress invoices with a status the API does not document never bill: %s", odd[:20])
    if invoice is None:
        if ref["invoice_id"] is not None:
            raise NoInvoiceError(
                f"invoice {ref['invoice_id']} (pinned by the invoice_id param) was not found"
            )
        if newest is not None and newest > billing_date:
            raise NoInvoiceError(
                f"no Huntress invoice was created on {billing_date} or in the 3 days before it (voided, "
                f"full_refund and draft invoices never bill); the newest invoice is of {newest}. "
                "Pin one with the invoice_id param."
            )
        return None
    invoice_id = invoice.get("id")
    if isinstance(invoice_id, bool) or not isinstance(invoice_id, int):
        # Its lines cannot be read without an id; one sent as text is not taken as a number either.
        # What the API echoed is scrubbed and cut, as every ApiError the client itself makes.
        said = huntress.api.scrub(f"created {invoice.get('created_at')!r}, id {invoice_id!r}")
        raise ApiError(f"Huntress invoice {cut(said, 200)} has no integer id")
    mode = ref["mode"]
    created = created_date(invoice)
    # An invoice of an older day than the newest standing one: never overwrite newer quantities by
    # accident. Decision: invoices of the same day are of the same billing date, so pinning one of
    # two same-day invoices still pushes; an undated pinned invoice reports only.
    older = created is None or (newest is not None and created < newest)
    if mode == "push" and older and not ref["force_historical_push"]:
        mode = "report_only"
    summary = InvoiceSummary(
        id=invoice_id,
        created_at=invoice.get("created_at"),
        quantity=invoice.get("quantity"),
        amount=invoice.get("amount"),
        status=invoice.get("status"),
        plan=invoice.get("plan"),
    )
    out: InvoicedRunRef = {**ref, "mode": mode, "invoice_id": invoice_id, "invoice": summary}
    run_store(eng, ref).start(invoice_id, mode, ref["settings"], ref.get("scope"))
    return out


# -- 3. extract ----------------------------------------------------------------------------------
def extract_huntress(eng: Engine, ref: InvoicedRunRef, huntress: HuntressSource) -> HuntressExtract:
    settings = settings_of(ref)
    invoice_id = ref["invoice_id"]
    assert invoice_id is not None  # find_invoice sets it to the chosen invoice's integer id
    with _huntress_window(eng, huntress):
        if settings.invoice_source == "reseller":
            lines = huntress.usage_lines(invoice_id)
            orgs = huntress.invoice_organizations(lines)  # the keys of managed accounts' organizations too
        else:
            orgs = huntress.organizations()
            lines = huntress.account_usage_lines(orgs)
    usage = frames.usage_frame(invoice_id, lines, settings.products)
    _stage(eng, ref, "usage", usage)
    _stage(eng, ref, "organizations", frames.organizations_frame(orgs))
    # Each unreadable organization carries the account read (an int: huntress.refused_organizations).
    unreadable = sorted(
        {a for o in orgs if o.get("unreadable") and isinstance(a := o.get("account_id"), int)}
    )
    log.info(
        "Huntress: %d lines, %d organizations, requests %s",
        len(lines),
        len(orgs),
        huntress.api.stats.as_dict(),
    )
    return {
        "lines": len(lines),
        "organizations": len(orgs),
        "unreadable_accounts": unreadable,
        "requests": huntress.api.stats.as_dict(),
    }


def extract_connectwise(eng: Engine, ref: InvoicedRunRef, cw: ConnectWiseSource) -> ConnectWiseExtract:
    settings = settings_of(ref)
    identifiers = catalog.identifiers(settings.products)
    companies = cw.companies()
    items = cw.catalog(identifiers)
    agreements = {i: a for a in cw.agreements(settings.agreement_types) if isinstance(i := a.get("id"), int)}
    additions = cw.additions(sorted(agreements), identifiers)
    _stage(eng, ref, "companies", frames.companies_frame(companies))
    _stage(eng, ref, "additions", frames.additions_frame(agreements, additions))
    _stage(eng, ref, "catalog", frames.catalog_frame(items))  # with its prices
    # What a person may add a missing addition to (the review pages' approvals).
    _stage(eng, ref, "agreements", frames.agreements_frame(agreements.values()))
    missing = sorted(set(identifiers) - {c.get("identifier") for c in items})
    if missing:
        log.warning("catalog items not found in ConnectWise: %s", missing)
    log.info(
        "ConnectWise: %d companies, %d agreements, %d additions, requests %s",
        len(companies),
        len(agreements),
        len(additions),
        cw.api.stats.as_dict(),
    )
    return {
        "companies": len(companies),
        "agreements": len(agreements),
        "additions": len(additions),
        "missing_catalog_items": missing,
        "requests": cw.api.stats.as_dict(),
        "codebase": cw.codebase,
    }


# -- 4. validate ---------------------------------------------------------------------------------
def validate(eng: Engine, ref: InvoicedRunRef) -> ValidationSummary:
    """Run the GX suites; failed rows get an `issue` (quarantined by reconcile)."""
    import json

    settings = settings_of(ref)
    usage = _staged(eng, ref, "usage")
    usage["issue"], usage_result = checks.run_suite("usage", usage, checks.usage_checks(settings.products))
    orgs = _staged(eng, ref, "organizations")
    org_issues, orgs_result = checks.run_suite("organizations", orgs, checks.organization_checks())
    # Huntress describing one organization twice (another name or key) leaves its company unknown:
    # its usage is held rather than matched on whichever record came first.
    twice = set(orgs.loc[org_issues.notna().to_numpy(dtype=bool), "organization_id"].dropna().tolist())
    held = usage["organization_id"].isin(twice).fillna(False).to_numpy(dtype=bool)
    if held.any():
        text = "Huntress lists the organization more than once, with different names or keys"
        usage.loc[held, "issue"] = (
            usage.loc[held, "issue"].fillna("").map(lambda old: f"{old}; {text}" if old else text)
        )
    _stage(eng, ref, "usage", usage)

    additions = _staged(eng, ref, "additions")
    live = live_additions(additions, date.fromisoformat(ref["billing_date"]), settings.agreement_types)
    live_issues, additions_result = checks.run_suite("live_additions", live, checks.live_addition_checks())
    additions["issue"] = pd.Series(pd.NA, index=additions.index, dtype="string")
    additions.loc[live_issues.index, "issue"] = live_issues
    _stage(eng, ref, "additions", additions)

    results = [
        usage_result,
        additions_result,
        checks.run_suite(
            "companies",
            _staged(eng, ref, "companies"),
            checks.company_checks(),
        )[1],
        orgs_result,
    ]
    path = reports_dir(ref) / report.VALIDATION_JSON
    path.write_text(json.dumps(results, indent=1, default=str))
    failed = {
        r["suite"]: sum(x["unexpected_count"] for x in r["results"]) for r in results if not r["success"]
    }
    return {"validation_path": str(path), "failed_rows_by_suite": failed}


# -- 5. reconcile --------------------------------------------------------------------------------
def reconcile_run(eng: Engine, ref: InvoicedRunRef) -> dict[str, int]:
    """Reconcile the staged frames, applying the tenant's active overrides (staged with the run, so
    its record shows which applied) and pricing each key from the additions and the catalog."""
    overrides = store.TenantStore(eng, ref["tenant"]).overrides_frame()
    _stage(eng, ref, "overrides", overrides)
    outcomes = reconcile.reconcile(
        _staged(eng, ref, "usage"),
        _staged(eng, ref, "organizations"),
        _staged(eng, ref, "companies"),
        _staged(eng, ref, "additions"),
        store.TenantStore(eng, ref["tenant"]).org_map_frame(),
        settings_of(ref),
        date.fromisoformat(ref["billing_date"]),
        overrides=overrides,
        catalog=_staged(eng, ref, "catalog"),
    )
    outcomes = apply_approvals(eng, ref, outcomes)
    _stage(eng, ref, "outcomes", outcomes)
    return reconcile.summarize(outcomes)


# -- 6. quarantine + ledger of what needs no write ------------------------------------------------
def quarantine(eng: Engine, ref: InvoicedRunRef, within: Iterable[str] | None = None) -> list[PushBatch]:
    """Record quarantined keys, resolve keys that are in step, ledger the rest; return push batches.

    `within` (an apply): the keys the run is about; other keys' open rows are left as they are."""
    db = run_store(eng, ref)
    outcomes = db.read_frame("outcomes")
    held = outcomes[outcomes["outcome"] == "quarantined"]
    db.upsert_quarantine([quarantine_row(r) for r in outcome_records(held)])
    db.resolve_superseded(
        dict(zip(held["sync_key"], held["reason_code"], strict=True)),
        seen_keys=outcomes["sync_key"].tolist(),
        within=within,
    )
    in_step = outcomes[outcomes["outcome"].isin(["unchanged", "not_applicable"])]
    db.resolve_synced(in_step["sync_key"].tolist())

    with_addition = outcomes[outcomes["outcome"].isin(["unchanged", *TO_PUSH])]
    pushing = ref["mode"] == "push"
    ledger = [
        ledger_row(r, "unchanged" if r["outcome"] == "unchanged" else "planned")
        for r in outcome_records(with_addition)
        if r["outcome"] == "unchanged" or not pushing
    ]
    db.record_changes(ledger)

    n_changes = int(outcomes["outcome"].isin(TO_PUSH).sum()) if pushing else 0
    n_batches = math.ceil(n_changes / PUSH_BATCH_SIZE)
    return [PushBatch(batch=i, batches=n_batches) for i in range(n_batches)]


def push_batch(eng: Engine, ref: InvoicedRunRef, batch: int, cw: ConnectWiseSource) -> dict[str, int]:
    run_id, db = ref["run_id"], run_store(eng, ref)
    outcomes = db.read_frame("outcomes")
    changes = outcomes[outcomes["outcome"].isin(TO_PUSH)].sort_values("sync_key")
    mine = outcome_records(changes.iloc[batch * PUSH_BATCH_SIZE : (batch + 1) * PUSH_BATCH_SIZE])
    recorded = ("updated", "created", "failed")
    done = {r["sync_key"] for r in db.changes() if r["action"] in recorded}
    todo = [c for c in mine if c["sync_key"] not in done]  # a retried batch skips what it recorded
    for c in todo:
        c["effective_date"] = ref["billing_date"]  # a new addition bills from the billing date

    def record(pushed: OutcomeRecord, result: PushResult) -> None:
        result = settle_approval(eng, run_id, pushed, result, tenant=ref["tenant"])
        change: OutcomeRecord = {**pushed, "addition_id": result.addition_id or pushed.get("addition_id")}
        db.record_changes([ledger_row(change, result.action)])
        if result.action in ("updated", "created"):
            db.resolve_synced([change["sync_key"]], by=resolver(eng, change, tenant=ref["tenant"]))
        else:
            held: OutcomeRecord = {**change, "reason_code": result.reason_code, "detail": result.detail}
            db.upsert_quarantine([quarantine_row(held)])

    todo, withdrawn = approvals_in_force(eng, run_id, todo, tenant=ref["tenant"])
    for change, result in withdrawn:  # revoked (or gone stale) since reconcile: nothing is sent
        record(change, result)
    results = [r for _, r in withdrawn] + push_changes(cw, todo, record)
    counts = {"skipped_already_recorded": len(mine) - len(todo)}
    for r in results:
        counts[r.reason_code or r.action] = counts.get(r.reason_code or r.action, 0) + 1
    log.info("batch %d: %s; ConnectWise requests %s", batch, counts, cw.api.stats.as_dict())
    return counts


# -- 7. record -----------------------------------------------------------------------------------
def final_outcomes(eng: Engine, ref: InvoicedRunRef) -> pd.DataFrame:
    """Outcomes after the push (reconcile.totals.after_push of the run's ledger and quarantine)."""
    db = run_store(eng, ref)
    return totals.after_push(db.read_frame("outcomes"), db.changes(), db.quarantine_rows())


def _live(eng: Engine, ref: InvoicedRunRef) -> pd.DataFrame:
    """The run's staged additions that are live on its billing date."""
    types = settings_of(ref).agreement_types
    return live_additions(_staged(eng, ref, "additions"), date.fromisoformat(ref["billing_date"]), types)


def run_checks(eng: Engine, ref: InvoicedRunRef, final: pd.DataFrame) -> TotalsCheck:
    """The run's totals check (reconcile.totals.totals_check) on its staged frames."""
    # Read as possibly without its invoice (an XCom of an older release), like report.collect.
    invoice = ref.get("invoice")
    return totals.totals_check(
        final,
        _staged(eng, ref, "usage"),
        _live(eng, ref),
        _staged(eng, ref, "organizations"),
        settings_of(ref).products,
        invoice["quantity"] if invoice else None,
    )


def money_totals(
    eng: Engine, ref: InvoicedRunRef, final: pd.DataFrame, units: Mapping[str, ProductCheck]
) -> MoneyTotals:
    """The run's money (reconcile.totals.run_money) on its staged frames and open quarantine rows."""
    return totals.run_money(
        final,
        _live(eng, ref),
        _staged(eng, ref, "catalog"),
        settings_of(ref).products,
        units,
        run_store(eng, ref).held_totals(),
    )


def record_run(eng: Engine, ref: InvoicedRunRef) -> RunResult:
    """Close the run (counts, totals check, money, new organizations) and write its report; the DAG
    task notifies and emits the new-organizations asset event after."""
    final = final_outcomes(eng, ref)
    counts = reconcile.summarize(final)
    checked = run_checks(eng, ref, final)
    db = run_store(eng, ref)
    result_checks: RecordedChecks = {
        "products": checked["products"],
        "mismatches": checked["mismatches"],
        "unreadable_accounts": checked["unreadable_accounts"],
    }
    if "invoice_quantity" in checked:
        result_checks["invoice_quantity"] = checked["invoice_quantity"]
    result_checks["money"] = money_totals(eng, ref, final, checked["products"])
    # On the invoice and recorded by no other run (store.first_sightings): what a retry answers too.
    result_checks["new_organizations"] = db.new_organizations()
    path = reports_dir(ref)
    # Formulas defused, like every report CSV; each key names the approval or override behind it.
    ids = cast("list[DecisionIds]", _records(final[["approval_id", "override_id"]]))
    who = decided_by(eng, ids, tenant=ref["tenant"])
    named = final.assign(decided_by=pd.Series(who, index=final.index, dtype="string"))
    csvfile.write_frame(path / report.OUTCOMES_CSV, named)
    # Finish first: the report shows the run's row as the database now holds it (status, times).
    db.finish("success", counts, result_checks, str(path))
    page = report.write_report(
        eng,
        ref,
        {
            "counts": counts,
            "checks": result_checks,
            "links": runtime.run_links(ref["run_id"], ref["tenant"]),
        },
        path,
    )
    if ref["mode"] == "push":
        # Last, so that an organization is recorded only by a run that got this far; a dry run or
        # report-only run changes nothing outside its own run (docs/contract.md §4).
        db.record_organizations_seen()
    return {
        "counts": counts,
        "checks": result_checks,
        "report_dir": str(path),
        "mode": ref["mode"],
        "report": str(page),
    }


def run_reference(result: RunResult) -> RunReference:
    """What record_run's task returns as its XCom: a reference to the recorded run, never its data
    (the checks, money and new organizations are in billing_runs and the report; a first run names
    every organization as new)."""
    checks = result["checks"]
    return {
        "counts": result["counts"],
        "mode": result["mode"],
        "report_dir": result["report_dir"],
        "report": result["report"],
        "new_organizations": len(checks.get("new_organizations") or []),
        "totals_equal": not checks.get("mismatches"),
    }


def new_organizations_event(ref: RunRef, result: RunResult) -> NewOrganizationsEvent:
    """The extra of the run's `billing_sync://new_organizations` asset event (docs/contract.md §1).

    `organization_ids`: the organizations the run recorded as new, in invoice order; always empty
    for a dry run or report-only run, which record nothing, so no DAG scheduled on the asset acts
    on an invoice nobody billed. The event itself is emitted on every successful run (Airflow
    emits one whenever a task with outlets succeeds): a consumer does nothing when the list is empty.
    """
    mode: str = result["mode"]
    new = result["checks"].get("new_organizations") or []
    return {
        "organization_ids": [int(o["id"]) for o in new] if mode == "push" else [],
        "billing_date": str(ref["billing_date"]),
        "run_id": str(ref["run_id"]),
        "tenant": str(ref["tenant"]),
        "mode": mode,
    }


def mark_run_failed(run_id: str, task_id: str, tenant: str) -> None:
    """Close a billing run whose task failed for good, so no run stays "running" forever.

    Called from the failure callback: it must never raise (the alert comes next). The error text is
    left to the alert, which scrubs secrets; the run record names the task only.
    """
    try:
        eng = engine()
        run = store.get_run(eng, run_id, tenant=tenant)
        if run is not None and run["status"] == "running":
            store.finish_run(eng, run_id, "failed", {}, {"failed_task": task_id}, tenant=tenant)
    except Exception:  # the billing DB itself may be what failed
        log.exception("could not mark billing run %s failed", run_id)
