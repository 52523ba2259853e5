"""The Airflow notifier of the billing sync: builds a run's message, sends it, records what failed.

An alert that fails to go out must not fail (or re-fail) the task it reports on: nothing here
raises. A channel that still fails after its retries is logged as an error and reported on the
billing run (`billing_runs.checks["alerts"]`), so that its page and records say nobody was told.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk import BaseNotifier, Context

from .. import tenants
from ..names import DAG_ID, SLACK_CONN_ID, SMTP_CONN_ID
from ..results import FinishedRun
from ..runref import RunRef
from .build import failure_message, summary_message
from .model import Message
from .render import render_html, render_slack, render_text
from .send import Media, dispatch

log = logging.getLogger(__name__)

MEDIA = Media(log=render_text, email=render_html, slack=render_slack)


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

    def notify(self, context: Context) -> None:
        try:
            message = self.message or failure_message(context)
        except Exception as exc:  # a broken context must still produce an alert
            log.exception("could not build the failure message")
            message = Message(
                subject=f"Billing sync FAILED ({type(exc).__name__} building the alert)", severity="failure"
            )
        self.results = dispatch(message, MEDIA, context, self.smtp_conn_id, self.slack_conn_id)
        if any(r.startswith("failed") for r in self.results.values()):
            report_on_run(self.run or _run_of(context), self.results)


def _run_of(context: Context) -> tuple[str, str] | None:
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
        from .. import runtime, store

        eng = store.engine_for(runtime.database_url())
        return store.add_run_checks(eng, run_id, {"alerts": dict(results)}, tenant=tenant)
    except Exception as exc:
        log.warning("the undelivered alert was not recorded on run %s: %s", run_id, type(exc).__name__)
        return False


def notify_run_summary(ref: RunRef, result: FinishedRun, context: Context | None = None) -> dict[str, str]:
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
        notifier.notify(context.copy() if context else Context())
        return notifier.results
    except Exception:
        log.exception("the run summary notification failed")
        return {}
