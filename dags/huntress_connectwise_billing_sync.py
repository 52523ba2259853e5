"""
### Huntress → ConnectWise billing sync

Keeps ConnectWise Manage agreement **additions** in step with the **Huntress invoice** of each
billing date (the DAG run's logical date).

1. **resolve** the billing date, settings (Variable `huntress_cw_billing_config` + run params) and mode;
2. **wait_for_invoice** (reschedule-mode sensor): the usage invoice created on the billing date, else the
   latest within the 3 days before it. An older invoice than the newest runs *report only* unless
   `force_historical_push`;
3. **extract_huntress** ∥ **extract_connectwise** into staging tables of the billing database;
4. **validate** with Great Expectations; failed rows are quarantined with the expectation as the reason;
5. **reconcile**: organizations → companies, products → catalog items, new quantities, the change guard;
6. **quarantine** what cannot be synced safely, ledger what is already in step;
7. **push** the changes in batches (re-read, write, record; idempotent);
8. **record_run**: outcome counts, the Huntress-vs-ConnectWise totals check, the report, and the asset
   event `billing_sync://new_organizations` (extra `organization_ids`: organizations on an invoice for
   the first time; empty unless the run pushed).

Connections: `huntress_default`, `connectwise_default`, optional `billing_sync_db`; alerts through the
optional `billing_sync_smtp` / `billing_sync_slack`. The *Billing* pages (Plugins menu) hold the
quarantine, the runs with their reports, and the organization mapping. See the README.

With a tenants file (`BILLING_SYNC_TENANTS_FILE`), one such DAG per tenant,
`huntress_connectwise_billing_sync__<id>`, with the tenant's connections, Variable and billing day;
its Huntress tasks run in the pool `huntress__<huntress_conn_id>` (docs/contract.md §1 Tenants).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pendulum
from airflow.sdk import Asset, Param, PokeReturnValue, chain, dag, get_current_context, task

# The one module of ours loaded at parse: the standard library only, and it asks no database.
from billing_sync.tenants import Tenant, configured

if TYPE_CHECKING:  # the types only: nothing else of ours loads while the file parses
    from billing_sync.runref import InvoicedRunRef, PushBatch, RunRef

# = billing_sync.names.NEW_ORGANIZATIONS_ASSET: updated by record_run on every successful run, its
# event's extra naming the organizations new on the invoice (docs/contract.md §1). Schedule a DAG on
# Asset("billing_sync://new_organizations") to act on them.
NEW_ORGANIZATIONS_ASSET = "billing_sync://new_organizations"
NEW_ORGANIZATIONS = Asset(NEW_ORGANIZATIONS_ASSET)


def _billing_day(variable: str) -> int:
    """`billing_day` of the Variable, for the schedule; 1 when unset or unreadable. Read at every parse.

    `Variable.get` asks Airflow's backends in order: a configured secrets backend, the environment
    (`AIRFLOW_VAR_<KEY>`), then the metadata database through the DAG processor. Its first call in a
    process imports Airflow's task runtime (~40 ms), which the DAG processor and the workers have
    already loaded. Anywhere else (the CLI, tests, a benchmark) with no secrets backend configured,
    Airflow would ask only the environment, so this reads the environment variable itself: the same
    answer, without the import. A tenant of a tenants file carries its own `billing_day`: no lookup.
    """
    import json
    import os
    import sys

    from airflow.sdk import conf

    try:
        if "airflow.sdk.execution_time.supervisor" in sys.modules or conf.get(
            "secrets", "backend", fallback=""
        ):
            from airflow.sdk import Variable

            raw = Variable.get(variable, default=None)
        else:
            raw = os.environ.get(f"AIRFLOW_VAR_{variable.upper()}")
        value = json.loads(raw or "{}").get("billing_day", 1)
    except Exception:  # an unreadable Variable or backend must not break the parse: run on day 1
        return 1
    return value if type(value) is int and 1 <= value <= 28 else 1


def _on_task_failure(context) -> None:
    """Close the billing run as failed, then alert through `billing_sync_smtp` / `billing_sync_slack`
    (log only when neither exists).

    A function rather than the notifier itself, so billing_sync loads only when a task fails.
    """
    from billing_sync import steps, tenants
    from billing_sync.notify import BillingSyncNotifier

    ti = context["ti"]
    steps.mark_run_failed(context["run_id"], ti.task_id, tenants.of_dag(ti.dag_id))
    BillingSyncNotifier()(context)


def _fails_fast(body: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a task body in `billing_sync.errors.failing_fast`: a permanent error (unusable settings,
    no invoice that can bill the date, refused credentials) fails the task at once, with no retry;
    any other error is retried as the DAG's default_args say."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        from billing_sync.errors import failing_fast

        with failing_fast():
            return body(*args, **kwargs)

    return run


def _variable(key: str) -> str | None:
    from airflow.sdk import Variable

    return Variable.get(key, default=None)


def build(tenant: Tenant):
    """The DAG of one tenant; the single-tenant form's (`tenants.DEFAULT`) is the DAG as it always was."""
    day = tenant.billing_day or _billing_day(tenant.variable)

    @dag(
        dag_id=tenant.dag_id,
        schedule=f"0 0 {day} * *",  # midnight UTC: the logical date is the billing date
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        doc_md=__doc__,
        tags=["billing", "huntress", "connectwise"],
        default_args={
            "retries": 2,
            "retry_delay": timedelta(minutes=2),
            "retry_exponential_backoff": 2.0,
            # Runs once a task has failed for good (not on retries).
            "on_failure_callback": _on_task_failure,
        },
        params={
            "dry_run": Param(
                None,
                type=["null", "boolean"],
                description="Plan and report only, write nothing. Empty = the Variable's dry_run.",
            ),
            "force_historical_push": Param(
                False,
                type="boolean",
                description="Push even when the billing date's invoice is not the newest.",
            ),
            "invoice_id": Param(None, type=["null", "integer"], description="Pin a Huntress invoice id."),
        },
    )
    def huntress_connectwise_billing_sync():
        # multiple_outputs: each key of the reference is also its own XCom, as when this returned `dict`.
        @task(multiple_outputs=True)
        @_fails_fast
        def resolve() -> RunRef:
            from billing_sync import steps

            ctx = get_current_context()
            billing_date = ctx["logical_date"].in_timezone("UTC").date()
            variable, params = _variable(tenant.variable), dict(ctx["params"])
            return steps.resolve(steps.engine(), ctx["run_id"], billing_date, variable, params, tenant.id)

        # The Huntress tasks share their account's pool (one slot): tenants sharing a Huntress
        # account share its 60 requests per minute. None (the default pool) in the single-tenant form.
        @task.sensor(
            poke_interval=timedelta(minutes=30),
            timeout=timedelta(days=3),
            mode="reschedule",
            pool=tenant.huntress_pool,
        )
        @_fails_fast  # no invoice will ever bill the date (NoInvoiceError): fail now, not after 3 days
        def wait_for_invoice(ref: RunRef) -> PokeReturnValue:  # xcom_value: the InvoicedRunRef
            from billing_sync import steps
            from billing_sync.huntress import HuntressClient

            huntress = HuntressClient.from_connection(tenant.huntress_conn_id)
            found = steps.find_invoice(steps.engine(), ref, huntress)
            return PokeReturnValue(is_done=found is not None, xcom_value=found)

        @task(pool=tenant.huntress_pool)
        @_fails_fast
        def extract_huntress(ref: InvoicedRunRef) -> dict:
            from billing_sync import steps
            from billing_sync.huntress import HuntressClient

            huntress = HuntressClient.from_connection(tenant.huntress_conn_id)
            return steps.extract_huntress(steps.engine(), ref, huntress)

        @task
        @_fails_fast
        def extract_connectwise(ref: InvoicedRunRef) -> dict:
            from billing_sync import steps
            from billing_sync.connectwise import ConnectWiseClient

            cw = ConnectWiseClient.from_connection(
                tenant.connectwise_conn_id, concurrency=ref["settings"]["connectwise_concurrency"]
            )
            return steps.extract_connectwise(steps.engine(), ref, cw)

        @task
        @_fails_fast
        def validate(ref: InvoicedRunRef) -> dict:
            from billing_sync import steps

            return steps.validate(steps.engine(), ref)

        @task
        @_fails_fast
        def reconcile(ref: InvoicedRunRef) -> dict:
            from billing_sync import steps

            return steps.reconcile_run(steps.engine(), ref)

        @task
        @_fails_fast
        def quarantine(ref: InvoicedRunRef) -> list[PushBatch]:
            from billing_sync import steps

            return steps.quarantine(steps.engine(), ref)

        @task(map_index_template="{{ batch_label }}", max_active_tis_per_dagrun=1)
        @_fails_fast
        def push(ref: InvoicedRunRef, batch: PushBatch, extracted: dict) -> dict:
            from billing_sync import steps
            from billing_sync.connectwise import ConnectWiseClient

            get_current_context()["batch_label"] = f"batch {batch['batch'] + 1} of {batch['batches']}"
            cw = ConnectWiseClient.from_connection(
                tenant.connectwise_conn_id,
                concurrency=ref["settings"]["connectwise_concurrency"],
                codebase=extracted.get("codebase"),
            )
            return steps.push_batch(steps.engine(), ref, batch["batch"], cw)

        @task(trigger_rule="none_failed", outlets=[NEW_ORGANIZATIONS])
        @_fails_fast
        def record_run(ref: InvoicedRunRef) -> dict:
            from billing_sync import notify, steps

            ctx = get_current_context()
            result = steps.record_run(steps.engine(), ref)
            # Quarantined keys, held changes, unequal totals or new organizations: a summary to people
            # (never fails the task).
            notify.notify_run_summary(ref, result, ctx)
            # The asset event Airflow records when this task succeeds: the new organizations' ids.
            ctx["outlet_events"][NEW_ORGANIZATIONS].extra = steps.new_organizations_event(ref, result)
            return steps.run_reference(result)  # the XCom: a reference, the data is in billing_runs

        ref = wait_for_invoice(resolve())
        batches = quarantine(ref)
        extracted = extract_connectwise(ref)
        chain([extract_huntress(ref), extracted], validate(ref), reconcile(ref), batches)
        # No changes → the mapped push expands to nothing (skipped); the run is still recorded.
        push.partial(ref=ref, extracted=extracted).expand(batch=batches) >> record_run(ref)

    return huntress_connectwise_billing_sync()


for _tenant in configured():
    build(_tenant)
