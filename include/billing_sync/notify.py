"""Alerts: a task failed, or a finished run left keys for a person to review or found new organizations.

Channels are Airflow connections, each optional (docs/operations.md):
    billing_sync_smtp   SMTP connection of the SMTP provider; extra `to` (list or "a@x, b@y"),
                        optional `cc`, `from_email`, plus the provider's own (disable_tls, ...)
    billing_sync_slack  Slack incoming-webhook connection of the Slack provider
With neither, a message is only logged. Sending never raises: an alert that fails to go out must not
fail (or re-fail) the task it reports on. A channel that fails (the mail server down or restarting)
is tried again, ALERT_ATTEMPTS times in all over about ALERT_RETRY_WAIT_S × 3; one that still fails is
logged as an error and reported on the billing run (`billing_runs.checks["alerts"]`).

A message is plain data (`Message`), rendered per medium: log text, HTML mail, Slack mrkdwn. Before
rendering, every value is scrubbed of the logins and passwords of our connections (an exception's
text can carry a URL or a header), then escaped for its medium, never treated as a template.

Of Airflow only `airflow.sdk.BaseNotifier` is imported at module level; hooks, providers and the
billing DB load when a message is sent.
"""

from __future__ import annotations

import html
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

from airflow.sdk import BaseNotifier

from . import errors, tenants
from .catalog import Products
from .names import (
    CONNECTWISE_CONN_ID,
    CONTRACT_OUTCOMES,
    DAG_ID,
    DB_CONN_ID,
    HUNTRESS_CONN_ID,
    REASON_CODES,
    REASON_HELP,
    SLACK_CONN_ID,
    SMTP_CONN_ID,
    reason_rank,
)
from .runref import RunRef
from .runtime import report_page_url, review_url, run_url, task_url
from .scrub import cut, scrubber, secrets_of

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

# Connections whose login/password must never reach a message.
SECRET_CONN_IDS = (HUNTRESS_CONN_ID, CONNECTWISE_CONN_ID, DB_CONN_ID, SMTP_CONN_ID, SLACK_CONN_ID)
DEFAULT_FROM_EMAIL = "billing-sync@localhost"
MAX_TEXT_CHARS = 2000  # any one value of a message (an error text is the long one)
MAX_SLACK_CHARS = 3500  # Slack truncates long webhook texts; keep the links in view
MAX_NEW_ORGANIZATIONS = 25  # new organizations one summary names; the rest are counted
# A mail server restarting is back within seconds: the channels that failed are tried again after
# ALERT_RETRY_WAIT_S, then twice that. Longer outages are for the run's record, not the task's time.
ALERT_ATTEMPTS = 3
ALERT_RETRY_WAIT_S = 5.0
MAX_RECORDED_ERROR_CHARS = 500


# -- the message ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Message:
    """What to tell people. `links` are (label, URL or file path)."""

    subject: str
    facts: tuple[tuple[str, str], ...] = ()
    sections: tuple[tuple[str, tuple[str, ...]], ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    severity: str = "info"  # info | failure

    def map_text(self, fn: Callable[[str], str]) -> Message:
        return replace(
            self,
            subject=fn(self.subject),
            facts=tuple((fn(k), fn(v)) for k, v in self.facts),
            sections=tuple((fn(h), tuple(fn(x) for x in lines)) for h, lines in self.sections),
            links=tuple((fn(k), fn(v)) for k, v in self.links),
        )


def render_text(m: Message) -> str:
    out = [m.subject, ""]
    out += [f"{k}: {v}" for k, v in m.facts]
    for heading, lines in m.sections:
        out += ["", f"{heading}:"] + [f"  - {x}" for x in lines]
    if m.links:
        out += [""] + [f"{k}: {v}" for k, v in m.links]
    return "\n".join(out)


def render_html(m: Message) -> str:
    e = html.escape
    colour = "#b42318" if m.severity == "failure" else "#175cd3"
    rows = "".join(
        f"<tr><th align='left' style='padding:2px 12px 2px 0'>{e(k)}</th>"
        f"<td style='padding:2px 0'>{e(v)}</td></tr>"
        for k, v in m.facts
    )
    parts = [f"<h2 style='color:{colour};font-size:18px'>{e(m.subject)}</h2>", f"<table>{rows}</table>"]
    for heading, lines in m.sections:
        items = "".join(f"<li>{e(x)}</li>" for x in lines)
        parts.append(f"<h3 style='font-size:15px'>{e(heading)}</h3><ul>{items}</ul>")
    if m.links:
        items = "".join(f"<li>{e(k)}: {_html_link(v)}</li>" for k, v in m.links)
        parts.append(f"<ul>{items}</ul>")
    return f"<div style='font-family:sans-serif;font-size:14px'>{''.join(parts)}</div>"


def _html_link(target: str) -> str:
    e = html.escape
    if target.startswith(("http://", "https://")):
        return f'<a href="{e(target)}">{e(target)}</a>'
    return f"<code>{e(target)}</code>"  # a file path: mail clients cannot open file:// links anyway


def render_slack(m: Message) -> str:
    def esc(s: str) -> str:
        # Slack's only escapes; unescaped, a name like "<!channel>" would ping everyone.
        return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    icon = ":rotating_light:" if m.severity == "failure" else ":clipboard:"
    out = [f"{icon} *{esc(m.subject)}*"] + [f"*{esc(k)}:* {esc(v)}" for k, v in m.facts]
    for heading, lines in m.sections:
        out += [f"*{esc(heading)}:*"] + [f"• {esc(x)}" for x in lines]
    links = [
        f"<{esc(v)}|{esc(k)}>" if v.startswith(("http://", "https://")) else f"{esc(k)}: `{esc(v)}`"
        for k, v in m.links
    ]
    body = "\n".join(out)
    tail = "\n".join(links)
    if len(body) + len(tail) > MAX_SLACK_CHARS:
        body = body[: max(0, MAX_SLACK_CHARS - len(tail) - 20)] + "\n… (cut; see the report)"
    return f"{body}\n{tail}" if tail else body


# -- secrets -------------------------------------------------------------------------------------
def connection_secrets(conn_ids: Iterable[str] = SECRET_CONN_IDS) -> list[str]:
    """The credentials of the connections that exist, in every form they travel in (scrub.py)."""
    found: list[str] = []
    for conn_id in conn_ids:
        conn = get_connection(conn_id)
        if conn is not None:
            found += secrets_of(conn)
    return found


def tenant_conn_ids() -> list[str]:
    """Every tenant's Huntress and ConnectWise connection ids: an alert of one tenant must not leak
    another's credentials either (none when the tenants file cannot be read: it is its own alert)."""
    try:
        return [c for t in tenants.configured() for c in (t.huntress_conn_id, t.connectwise_conn_id)]
    except tenants.TenantsFileError:
        return []


# -- Airflow lookups (lazy imports) ----------------------------------------------------------------
def get_connection(conn_id: str) -> Any | None:
    """The connection, or None when it is not defined (or cannot be looked up)."""
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:
        return None
    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    except Exception as exc:  # secrets backend down: a lookup problem must not stop the alert
        log.warning("could not look up connection %s: %s", conn_id, type(exc).__name__)
        return None


def _extra(conn: Any) -> dict[str, Any]:
    try:
        extra = conn.extra_dejson
    except Exception:
        return {}
    return extra if isinstance(extra, dict) else {}


# -- what to say ---------------------------------------------------------------------------------
def failure_message(context: Mapping[str, Any]) -> Message:
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


def attention_reasons(result: Mapping[str, Any]) -> list[str]:
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


def new_organizations(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The organizations record_run found new (`id`, `name`), from the run's checks."""
    new = (result.get("checks") or {}).get("new_organizations")
    return [o for o in new or () if isinstance(o, Mapping)]


def summary_message(
    ref: RunRef, result: Mapping[str, Any], task_id: str = "record_run", dag_id: str = DAG_ID
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
    partial: Mapping[str, Any] = ref  # tests and old callers pass a reference without its settings
    money = _money_lines(checks.get("money"), (partial.get("settings") or {}).get("products"))
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


def _money_lines(recorded: Mapping[str, Any] | None, products: Products | None) -> tuple[str, ...]:
    """The run's money (`billing_runs.checks.money`) as sentences, in report.money_text's words."""
    if not recorded:
        return ()
    from .report import money_view

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


def _new_lines(new: list[Mapping[str, Any]]) -> tuple[str, ...]:
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


def _billing_date(context: Mapping[str, Any]) -> str:
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
        from . import runtime, store

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
        from .report import run_directory

        return str(run_directory(billing_date, run_id, tenant))
    except Exception:
        return None


# -- sending -------------------------------------------------------------------------------------
def dispatch(
    message: Message,
    context: Mapping[str, Any] | None = None,
    smtp_conn_id: str = SMTP_CONN_ID,
    slack_conn_id: str = SLACK_CONN_ID,
) -> dict[str, str]:
    """Log the message and send it through every configured channel. Returns channel → outcome
    ("sent", "skipped: ...", "failed: ..."); never raises."""
    scrub = scrubber(connection_secrets((*SECRET_CONN_IDS, *tenant_conn_ids(), smtp_conn_id, slack_conn_id)))
    # Scrub, then cut: a secret cut in two is no longer found by its value.
    message = message.map_text(lambda text: cut(scrub(text), MAX_TEXT_CHARS))
    level = logging.ERROR if message.severity == "failure" else logging.WARNING
    log.log(level, "billing sync alert:\n%s", render_text(message))
    results: dict[str, str] = {}
    pending: dict[str, tuple[str, Any, Callable[..., str]]] = {}
    for name, conn_id, send in (("email", smtp_conn_id, _send_email), ("slack", slack_conn_id, _send_slack)):
        conn = get_connection(conn_id)
        if conn is None:
            results[name] = f"skipped: no connection {conn_id}"
        else:
            pending[name] = (conn_id, conn, send)
    # Rounds, not a loop per channel: a second channel down costs no extra wait.
    for attempt in range(1, ALERT_ATTEMPTS + 1):
        if attempt > 1:
            time.sleep(ALERT_RETRY_WAIT_S * 2 ** (attempt - 2))
        for name, (conn_id, conn, send) in list(pending.items()):
            try:
                # The task context Airflow passed (or none): what the providers' notifiers take.
                outcome = send(conn, conn_id, message, cast("Context", dict(context or {})))
            except Exception as exc:
                error = cut(scrub(f"{type(exc).__name__}: {exc}"), MAX_RECORDED_ERROR_CHARS)
                results[name] = f"failed after {attempt} attempt(s): {error}"
                log.warning(
                    "billing sync alert: %s channel %s, attempt %d: %s", name, conn_id, attempt, error
                )
                continue
            results[name] = outcome if attempt == 1 or outcome != "sent" else f"sent on attempt {attempt}"
            del pending[name]
        if not pending:
            break
    for name, (conn_id, _, _) in pending.items():
        log.error("billing sync alert NOT delivered through %s (%s): %s", name, conn_id, results[name])
    if all(r.startswith("skipped: no connection") for r in results.values()):
        log.info(
            "no notification connection (%s, %s) configured: the alert was only logged",
            smtp_conn_id,
            slack_conn_id,
        )
    return results


def _send_email(conn: Any, conn_id: str, message: Message, context: Context) -> str:
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    extra = _extra(conn)
    to = _addresses(extra.get("to"))
    if not to:
        log.warning("connection %s has no extra.to: no e-mail sent", conn_id)
        return "skipped: extra.to is empty"
    notifier = SmtpNotifier(
        to=to,
        cc=_addresses(extra.get("cc")) or None,
        smtp_conn_id=conn_id,
        from_email=extra.get("from_email") or DEFAULT_FROM_EMAIL,
        subject=" ".join(message.subject.split()),  # no line breaks in a header
        html_content=render_html(message),
    )
    # notify(), not __call__: __call__ renders the fields as Jinja templates, and our text holds
    # names from Huntress/ConnectWise ("{{ conn... }}" must stay text).
    notifier.notify(context)
    return "sent"


def _send_slack(conn: Any, conn_id: str, message: Message, context: Context) -> str:
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier

    # Typed as its base: the provider's own `notify` carries no annotations.
    notifier: BaseNotifier = SlackWebhookNotifier(
        slack_webhook_conn_id=conn_id, text=render_slack(message), timeout=30
    )
    notifier.notify(context)
    return "sent"


def _addresses(value: Any) -> list[str]:
    if isinstance(value, str):
        return [a for a in re.split(r"\s*[,;]\s*", value.strip()) if a]
    if isinstance(value, list | tuple):
        return [str(a).strip() for a in value if str(a).strip()]
    return []


class BillingSyncNotifier(BaseNotifier):
    """Airflow notifier for the billing sync: a failure alert built from the task context, or a
    given message, sent through whichever of `billing_sync_smtp` / `billing_sync_slack` exist.

    As `on_failure_callback`: `BillingSyncNotifier()`. With a message: `BillingSyncNotifier(msg)(context)`.
    """

    template_fields = ()  # nothing is a template: alert text carries third-party names

    def __init__(
        self,
        message: Message | None = None,
        *,
        smtp_conn_id: str = SMTP_CONN_ID,
        slack_conn_id: str = SLACK_CONN_ID,
        run: tuple[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.message = message
        self.smtp_conn_id = smtp_conn_id
        self.slack_conn_id = slack_conn_id
        self.run = run  # (run id, tenant) of the billing run to report an undelivered alert on
        self.results: dict[str, str] = {}

    def notify(self, context: Mapping[str, Any]) -> None:
        try:
            message = self.message or failure_message(context)
        except Exception as exc:  # a broken context must still produce an alert
            log.exception("could not build the failure message")
            message = Message(
                subject=f"Billing sync FAILED ({type(exc).__name__} building the alert)", severity="failure"
            )
        self.results = dispatch(message, context, self.smtp_conn_id, self.slack_conn_id)
        if any(r.startswith("failed") for r in self.results.values()):
            report_on_run(self.run or _run_of(context), self.results)


def _run_of(context: Mapping[str, Any]) -> tuple[str, str] | None:
    """(run id, tenant) of the task context's billing run, when it names one."""
    ti = context.get("ti") or context.get("task_instance")
    run_id = context.get("run_id") or getattr(ti, "run_id", None)
    if not run_id:
        return None
    return str(run_id), tenants.of_dag(getattr(ti, "dag_id", None) or DAG_ID)


def report_on_run(run: tuple[str, str] | None, results: Mapping[str, str]) -> bool:
    """Put what became of an alert that did not go out on its billing run (`checks["alerts"]`, the
    run's other checks kept), so that its page and records say nobody was told. Only a closed run:
    a running one is closed by its own tasks. Never raises (the billing DB may be what failed);
    True when recorded."""
    if run is None:
        return False
    run_id, tenant = run
    try:
        from . import runtime, store

        eng = store.engine_for(runtime.database_url())
        return store.add_run_checks(eng, run_id, {"alerts": dict(results)}, tenant=tenant)
    except Exception as exc:
        log.warning("the undelivered alert was not recorded on run %s: %s", run_id, type(exc).__name__)
        return False


def notify_run_summary(
    ref: RunRef, result: Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """From record_run: tell people when the run left something to review. Never raises."""
    try:
        ti = (context or {}).get("ti")
        message = summary_message(
            ref,
            result,
            task_id=getattr(ti, "task_id", "record_run"),
            dag_id=getattr(ti, "dag_id", None) or DAG_ID,
        )
        if message is None:
            log.info("run %s: nothing to review, no summary sent", ref.get("run_id"))
            return {}
        run = (str(ref["run_id"]), str(ref.get("tenant") or tenants.DEFAULT_TENANT))
        notifier = BillingSyncNotifier(message, run=run)
        notifier.notify(dict(context or {}))
        return notifier.results
    except Exception:
        log.exception("the run summary notification failed")
        return {}
