"""
### Huntress → ConnectWise billing: Apply now

What the billing desk triggers when a person decides (an approval, a mapping, an override, a new
addition): it syncs **only the keys of the companies and organizations named**, by the same rules as
a full run of the billing date (never guess, the guard, live additions, re-read before write, the
ledger, quarantine resolution), and nothing else (docs/contract.md §1 Apply DAG).

Conf: `{"billing_date": "YYYY-MM-DD", "companies": [cw_company_id, ...], "organizations":
[huntress_organization_id, ...]}`. It reads the invoice lines the billing date's newest finished
full run staged (the invoice confirmed still standing with one Huntress request) and ConnectWise for
the companies involved only. One task: a few seconds, about ten requests.

Unscheduled and active when deployed: it never waits for the monthly DAG (paused, or a run waiting
for its invoice). One run at a time per tenant, so two applies never write the same addition at
once. Each run is a `billing_runs` row with `scope` set to its conf.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

# The one module of ours loaded at parse: the standard library only, and it asks no database.
from billing_sync.tenants import Tenant, TenantsFileError, configured


def _on_task_failure(context) -> None:
    """Close the apply's billing run as failed, then alert (as the monthly DAG does)."""
    from billing_sync import steps, tenants
    from billing_sync.notify import BillingSyncNotifier

    ti = context["ti"]
    steps.mark_run_failed(context["run_id"], ti.task_id, tenants.of_dag(ti.dag_id))
    BillingSyncNotifier()(context)


def _fails_fast(body: Callable[..., Any]) -> Callable[..., Any]:
    """A permanent error (a bad conf, no finished run of the date, refused credentials) fails the
    task at once, with no retry (billing_sync.errors.failing_fast)."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        from billing_sync.errors import failing_fast

        with failing_fast():
            return body(*args, **kwargs)

    return run


def build(tenant: Tenant):
    @dag(
        dag_id=tenant.apply_dag_id,
        schedule=None,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        is_paused_upon_creation=False,  # the desk's button must work the day it is deployed
        max_active_runs=1,  # two applies of one tenant never write the same addition at once
        doc_md=__doc__,
        tags=["billing", "huntress", "connectwise", "apply"],
        default_args={
            "retries": 1,
            "retry_delay": timedelta(seconds=20),  # a person is watching: retry soon
            "on_failure_callback": _on_task_failure,
        },
        params={
            "billing_date": Param(
                None, type=["null", "string"], description="The billing date of the decision, YYYY-MM-DD."
            ),
            "companies": Param(
                [], type="array", items={"type": "integer"}, description="ConnectWise company ids."
            ),
            "organizations": Param(
                [], type="array", items={"type": "integer"}, description="Huntress organization ids."
            ),
        },
    )
    def huntress_connectwise_billing_apply():
        # No Huntress pool: the apply's one Huntress request must not queue behind a monthly run's
        # extraction; the account's shared rate-limit window (billing_api_calls) still spaces it.
        @task
        @_fails_fast
        def apply() -> dict:
            from airflow.sdk import Variable

            from billing_sync import apply as applying
            from billing_sync import steps
            from billing_sync.connectwise import ConnectWiseClient
            from billing_sync.huntress import HuntressClient

            ctx = get_current_context()
            conf = {k: ctx["params"].get(k) for k in ("billing_date", "companies", "organizations")}
            result = applying.run(
                steps.engine(),
                ctx["run_id"],
                conf,
                Variable.get(tenant.variable, default=None),
                tenant=tenant.id,
                huntress=HuntressClient.from_connection(tenant.huntress_conn_id),
                connectwise=lambda: ConnectWiseClient.from_connection(tenant.connectwise_conn_id),
            )
            return {k: result[k] for k in ("base_run_id", "mode", "companies", "counts")}

        apply()

    return huntress_connectwise_billing_apply()


try:
    _tenants = configured()
except TenantsFileError:  # a file broken as a whole: the monthly DAG file's import error names it
    _tenants = []
for _tenant in _tenants:
    build(_tenant)
