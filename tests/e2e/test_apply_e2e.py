"""The apply DAG itself (issue 20 §1; docs/contract.md §1 Apply DAG) run with `dag.test()`: after a
full run of the billing date, a person's approval is applied by triggering the tenant's apply DAG
with the decision's conf, while the monthly DAG is paused; its one task writes the addition, and its
billing run records the conf as its scope."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_sync import steps, store
from tests.conftest import ROOT
from tests.helpers.apply_month import DAY, HELD, HELD_ADDITION, HELD_AGREEMENT, VARIABLE, quantities, scenario
from tests.proof.helpers import run_steps

APPLY_DAG_ID = "huntress_connectwise_billing_apply"
MONTHLY_DAG_ID = "huntress_connectwise_billing_sync"


def _pause(dag_id: str) -> None:
    """The monthly DAG paused in the metadata database, as Airflow's default leaves a new one."""
    from airflow.models.dag import DagModel
    from airflow.models.dagbundle import DagBundleModel
    from airflow.utils.session import create_session

    with create_session() as session:
        if session.get(DagBundleModel, "dags-folder") is None:
            session.add(DagBundleModel(name="dags-folder"))
            session.flush()
        row = session.get(DagModel, dag_id)
        if row is None:
            row = DagModel(dag_id=dag_id, bundle_name="dags-folder")
            session.add(row)
        row.is_paused = True


def test_the_apply_dag_writes_an_approved_change_while_the_monthly_dag_is_paused(
    sandbox_factory, run_dag, monkeypatch, airflow_db
) -> None:
    sb = sandbox_factory(scenario())
    for k, v in sb.connections().items():
        monkeypatch.setenv(k, v)
    import json

    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", json.dumps(VARIABLE))
    eng = steps.engine()  # the billing database of the AIRFLOW_CONN_BILLING_SYNC_DB run_dag set
    done = run_steps(eng, "scheduled__full", DAY, variable=VARIABLE)
    assert done.error is None, done.describe()
    approval = store.add_approval(
        eng, billing_date=DAY, sync_key=HELD, cw_company_id=251, product="edr", kind="change",
        addition_id=HELD_ADDITION, agreement_id=HELD_AGREEMENT, from_quantity=40, to_quantity=5,
        user="Alice Example", user_id="alice", tenant="default",
    )  # fmt: skip
    _pause(MONTHLY_DAG_ID)

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    dag = bag.dags[APPLY_DAG_ID]
    assert (dag.schedule, dag.max_active_runs, dag.is_paused_upon_creation) == (None, 1, False)
    assert [t.task_id for t in dag.tasks] == ["apply"], "one task: each task process costs seconds"
    conf = {"billing_date": DAY, "companies": [251], "organizations": []}
    dagrun = dag.test(logical_date=datetime.now(UTC), run_conf=conf)

    assert dagrun.state == "success"
    assert quantities(sb)[HELD_ADDITION] == 5
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "applied"
    record = store.get_run(eng, dagrun.run_id, tenant="default")
    assert record is not None and record["scope"] == conf and record["status"] == "success"


def test_a_bad_conf_fails_the_apply_at_once(sandbox_factory, run_dag, monkeypatch, airflow_db) -> None:
    sb = sandbox_factory(scenario())
    for k, v in sb.connections().items():
        monkeypatch.setenv(k, v)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[APPLY_DAG_ID]
    dagrun = dag.test(
        logical_date=datetime.now(UTC), run_conf={"billing_date": "2026-02-30", "companies": [1]}
    )
    assert dagrun.state == "failed"
    (ti,) = dagrun.get_task_instances()
    assert ti.try_number == 1, "a permanent error: no retry"


pytestmark = pytest.mark.e2e
