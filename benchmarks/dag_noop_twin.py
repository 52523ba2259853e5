"""The baseline of benchmarks/dag_parse.py: a DAG of the same shape as
dags/huntress_connectwise_billing_sync.py that does no work while it parses.

Same DAG arguments, the same tasks with the same task arguments and the same wiring (XCom arguments,
`chain`, the mapped `push`); task bodies that do nothing, a constant schedule, no Variable lookup, no
helpers, and no imports beyond what any TaskFlow DAG file imports. dag_parse.py checks that the two
DAGs have the same shape before it compares them, so this file must follow the real one.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Asset, Param, PokeReturnValue, chain, dag, task


def _on_task_failure(context) -> None:
    pass


@dag(
    dag_id="huntress_connectwise_billing_sync",
    schedule="0 0 1 * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["billing", "huntress", "connectwise"],
    default_args={
        "retries": 2,
        "retry_delay": timedelta(minutes=2),
        "retry_exponential_backoff": 2.0,
        "on_failure_callback": _on_task_failure,
    },
    params={
        "dry_run": Param(None, type=["null", "boolean"], description="Plan and report only."),
        "force_historical_push": Param(False, type="boolean", description="Push an older invoice."),
        "invoice_id": Param(None, type=["null", "integer"], description="Pin a Huntress invoice id."),
    },
)
def huntress_connectwise_billing_sync():
    @task(multiple_outputs=True)
    def resolve() -> dict:
        return {}

    @task.sensor(poke_interval=timedelta(minutes=30), timeout=timedelta(days=3), mode="reschedule")
    def wait_for_invoice(ref: dict) -> PokeReturnValue:
        return PokeReturnValue(is_done=True)

    @task
    def extract_huntress(ref: dict) -> dict:
        return {}

    @task
    def extract_connectwise(ref: dict) -> dict:
        return {}

    @task
    def validate(ref: dict) -> dict:
        return {}

    @task
    def reconcile(ref: dict) -> dict:
        return {}

    @task
    def quarantine(ref: dict) -> list:
        return []

    @task(map_index_template="{{ batch_label }}", max_active_tis_per_dagrun=1)
    def push(ref: dict, batch: dict, extracted: dict) -> dict:
        return {}

    @task(trigger_rule="none_failed", outlets=[Asset("billing_sync://new_organizations")])
    def record_run(ref: dict) -> dict:
        return {}

    ref = wait_for_invoice(resolve())
    batches = quarantine(ref)
    extracted = extract_connectwise(ref)
    chain([extract_huntress(ref), extracted], validate(ref), reconcile(ref), batches)
    push.partial(ref=ref, extracted=extracted).expand(batch=batches) >> record_run(ref)


huntress_connectwise_billing_sync()
