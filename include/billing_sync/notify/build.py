"""Building a run's messages: a task's failure alert from its context, a finished run's summary.

A summary goes out only when a run left something for a person: quarantined keys, held changes,
totals that disagree, new organizations. Best effort throughout: the billing DB and the report folder
are read when they can be, and a message is built without them when they cannot.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

from .. import errors, tenants
from ..catalog import Products
from ..names import CONTRACT_OUTCOMES, DAG_ID, REASON_CODES, REASON_HELP, reason_rank
from ..results import FinishedRun, MoneyTotals, NewOrganization
from ..runref import RunRef
from ..runtime import report_page_url, review_url, run_url, task_url
from .model import Message

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

MAX_NEW_ORGANIZATIONS = 25  # new organizations one summary names; the rest are counted


def failure_message(context: Context) -> Message:
    """A task failed for good (retries used up, or at once on a permanent error)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or DAG_ID
    tenant = tenants.of_dag(dag_id)
    run_id = str(context.get("run_id") or getattr(ti, "run_id", "") or "")
    task_id = str(getattr(ti, "task_id", "?"))
    map_index = getattr(ti, "map_index", None)
    billing_date = _billing_date(context)
    task = task_id + (f" [{map_index}]" if isinstance(map_index, int) and map_index >= 0 else "")
    error = errors.unwrap(context.get("exception"))  # the error itself, not the task-failing wrapper
    error_text = (
        f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error or "unknown")
    )
    facts = [
        ("Billing date", billing_date),
        ("Task", task),
        ("Attempt", str(getattr(ti, "try_number", "?"))),
        ("Run", run_id),
        *_tenant_fact(tenant),
        ("Error", error_text),  # cut in `dispatch`, after scrubbing
    ]
    sections = []
    by_reason = _open_quarantine_by_reason(run_id, tenant)
    if by_reason:
        sections.append(("Quarantined so far in this run", tuple(f"{c}: {n}" for c, n in by_reason.items())))
    links = [
        ("Task log in Airflow", task_url(run_id, task_id, map_index, dag_id)),
        ("Run in Airflow", run_url(run_id, dag_id)),
        ("Report page (once the run records)", report_page_url(run_id, tenant)),
    ]
    folder = _report_folder(billing_date, run_id, tenant)
    if folder:
        links.append(("Report folder", folder))
    return Message(
        subject=f"Billing sync FAILED: task {task}, billing date {billing_date}",
        facts=tuple(facts),
        sections=tuple(sections),
        links=tuple(links),
        severity="failure",
    )


def attention_reasons(result: FinishedRun) -> list[str]:
    """Why a finished run needs a person: quarantined keys, held changes, totals that disagree."""
    counts, checks = result.get("counts") or {}, result.get("checks") or {}
    why = []
    if counts.get("quarantined"):
        why.append(f"{counts['quarantined']} key(s) quarantined")
    if result.get("mode") == "report_only" and counts.get("planned"):
        why.append(f"{counts['planned']} change(s) held: the invoice is not the newest (report only)")
    if checks.get("mismatches"):
        why.append("Huntress and ConnectWise totals disagree")
    if new := new_organizations(result):
        why.append(f"{len(new)} new organization(s) on the invoice")
    return why


def new_organizations(result: FinishedRun) -> list[NewOrganization]:
    """The organizations record_run found new (`id`, `name`), from the run's checks."""
    new = (result.get("checks") or {}).get("new_organizations")
    return [o for o in new or () if isinstance(o, Mapping)]


def summary_message(
    ref: RunRef, result: FinishedRun, task_id: str = "record_run", dag_id: str = DAG_ID
) -> Message | None:
    """The run's summary when something needs review or an organization is new; None when the run
    is clean. Leads with the money; names the new organizations (`MAX_NEW_ORGANIZATIONS` of them)."""
    why = attention_reasons(result)
    if not why:
        return None
    counts, checks = result.get("counts") or {}, result.get("checks") or {}
    run_id, billing_date = str(ref["run_id"]), str(ref["billing_date"])
    tenant = str(
        ref.get("tenant") or tenants.DEFAULT_TENANT
    )  # an alert goes out from a partial reference too
    outcomes = ", ".join(f"{k} {counts.get(k, 0)}" for k in CONTRACT_OUTCOMES)
    facts = (
        ("Billing date", billing_date),
        ("Invoice", str(ref.get("invoice_id"))),
        ("Mode", str(result.get("mode") or ref.get("mode"))),
        ("Task", task_id),
        ("Run", run_id),
        *_tenant_fact(tenant),
        ("Outcomes", outcomes),
        ("Needs attention", "; ".join(why)),
    )
    sections = []
    # The money first, as the report leads with it (report.money_view's numbers and words).
    # Tests and old callers pass a reference without its settings.
    money = _money_lines(checks.get("money"), (ref.get("settings") or {}).get("products"))
    if money:
        sections.append(("Money per month (units × unit price; ConnectWise after the push)", money))
    reasons = [(c, int(counts[c])) for c in REASON_CODES if counts.get(c)]
    if reasons:
        sections.append(
            (
                "Quarantined by reason (what to do)",
                tuple(f"{c}: {n} — {REASON_HELP.get(c, '')}".rstrip(" —") for c, n in reasons),
            )
        )
    if checks.get("mismatches"):
        sections.append(("Totals check", tuple(str(x) for x in checks["mismatches"])))
    new = new_organizations(result)
    if new:
        sections.append((_new_heading(str(result.get("mode") or ref.get("mode"))), _new_lines(new)))
    links = [
        ("Report page", report_page_url(run_id, tenant)),
        *chart_links(run_id, tenant),
        ("Run in Airflow", run_url(run_id, dag_id)),
    ]
    if new:
        links.insert(1, ("Organization mapping", review_url("/mapping", tenant)))
    if result.get("report"):
        links.append(("Report file", str(result["report"])))
    total = counts.get("quarantined", 0)
    subject = (
        f"Billing sync {billing_date}: {total} key(s) need review"
        if total
        else f"Billing sync {billing_date}: {why[0]}"
    )
    return Message(subject=subject, facts=facts, sections=tuple(sections), links=tuple(links))


def _money_lines(recorded: MoneyTotals | None, products: Products | None) -> tuple[str, ...]:
    """The run's money (`billing_runs.checks.money`) as sentences, in report.money_text's words."""
    if not recorded:
        return ()
    from ..report import money_view

    view = money_view(recorded, products)
    if view is None:
        return ()
    lines = [f"Recovered by this run: {view['recovered']} per month"]
    if view["has_planned"]:
        lines.append(f"Planned, not written: {view['planned']} per month")
    lines.append(f"Still held: {view['held_amount']} in {view['held_rows']} open quarantine row(s)")
    lines += [
        f"{t.get('line', t['product'])}: Huntress {t['huntress_units']} units, {t['huntress_amount'] or '—'}; "
        f"ConnectWise {t['connectwise_units']} units, {t['connectwise_amount'] or '—'}; "
        f"difference {t['difference'] or '—'}; recovered {t['recovered'] or '—'}"
        for t in view["products"]
    ]
    lines.append(
        f"total: Huntress {view['huntress_amount'] or '—'}, ConnectWise {view['connectwise_amount'] or '—'}"
    )
    return tuple(lines)


def _new_heading(mode: str) -> str:
    if mode == "push":
        return "New organizations (on an invoice for the first time)"
    return f"New organizations (on no recorded invoice; this {mode} run records none)"


def _new_lines(new: list[NewOrganization]) -> tuple[str, ...]:
    """`Name (#id)` per organization, at most MAX_NEW_ORGANIZATIONS, then how many more."""
    lines = [f"{o.get('name') or 'no name'} (#{o.get('id')})" for o in new[:MAX_NEW_ORGANIZATIONS]]
    if len(new) > MAX_NEW_ORGANIZATIONS:
        lines.append(f"… and {len(new) - MAX_NEW_ORGANIZATIONS} more: see the organization mapping page")
    return tuple(lines)


def chart_links(run_id: str, tenant: str) -> list[tuple[str, str]]:
    """The charts of the billing-review pages: this run's (its page) and the one over billing dates."""
    return [
        ("Chart of this run", review_url(f"/runs/{quote(run_id, safe='')}", tenant) + "#chart"),
        ("Charts over billing dates", review_url("/runs", tenant) + "#charts"),
    ]


def _tenant_fact(tenant: str) -> tuple[tuple[str, str], ...]:
    """The tenant among an alert's facts; none in the single-tenant form, whose alerts stay as they were."""
    return () if tenant == tenants.DEFAULT_TENANT else (("Tenant", tenant),)


def _billing_date(context: Context) -> str:
    """The DAG's billing date: the logical date in UTC, as `resolve` computes it."""
    when = context.get("logical_date")
    if when is None:
        dag_run = context.get("dag_run")
        when = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    if isinstance(when, datetime):
        if when.tzinfo is not None:
            when = when.astimezone(UTC)
        return when.date().isoformat()
    return when.isoformat() if isinstance(when, date) else "unknown"


def _open_quarantine_by_reason(run_id: str, tenant: str) -> dict[str, int]:
    """Best effort: the failure alert goes out even when the billing DB is what failed."""
    if not run_id:
        return {}
    try:
        from .. import runtime, store

        rows = store.list_quarantine(
            store.engine_for(runtime.database_url()), run_id=run_id, status="open", limit=None, tenant=tenant
        )
    except Exception as exc:
        log.info("no quarantine counts for the alert: %s", type(exc).__name__)
        return {}
    counts = Counter(r["reason_code"] for r in rows)
    return {c: counts[c] for c in sorted(counts, key=lambda c: (reason_rank(c), c))}


def _report_folder(billing_date: str, run_id: str, tenant: str) -> str | None:
    try:
        from ..report import run_directory

        return str(run_directory(billing_date, run_id, tenant))
    except Exception:
        return None
