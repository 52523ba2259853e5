"""The DAG file parses, cheaply, into the DAG the contract promises."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

DAG_ID = "huntress_connectwise_billing_sync"


def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dagbag_has_no_import_errors_and_the_contract_dag():
    bag = _dagbag()
    assert bag.import_errors == {}
    assert DAG_ID in bag.dags
    dag = bag.dags[DAG_ID]
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.timetable.expression == "0 0 1 * *"
    assert set(dag.params.keys()) == {"dry_run", "force_historical_push", "invoice_id"}
    assert dag.params["force_historical_push"] is False
    assert dag.doc_md and "billing" in dag.doc_md.lower()
    assert {t.task_id for t in dag.tasks} == {
        "resolve",
        "wait_for_invoice",
        "extract_huntress",
        "extract_connectwise",
        "validate",
        "reconcile",
        "quarantine",
        "push",
        "record_run",
    }
    sensor = dag.get_task("wait_for_invoice")
    assert sensor.mode == "reschedule"
    assert dag.get_task("extract_huntress").upstream_task_ids == {"wait_for_invoice"}
    assert dag.get_task("validate").upstream_task_ids >= {"extract_huntress", "extract_connectwise"}
    assert dag.get_task("record_run").trigger_rule == "none_failed"


@pytest.mark.parametrize(
    "module", ["huntress_connectwise_billing_sync", "huntress_connectwise_billing_apply"]
)
def test_dag_file_imports_nothing_heavy(module: str):
    """pandas, GX and our package must load only inside tasks; of ours the file reads
    only the tenants (billing_sync.tenants and the names it spells: the standard library). billing_sync.provider (a dict,
    no imports) is Airflow's own doing: it reads every provider entry point when it lists them."""
    code = (
        f"import sys; sys.path.insert(0, 'dags'); import {module}; "
        "ours = {'billing_sync', 'billing_sync.tenants', 'billing_sync.names', 'billing_sync.provider'}; "
        "heavy = [m for m in ('pandas', 'great_expectations', 'numpy') if m in sys.modules]; "
        "heavy += sorted(m for m in sys.modules if m.startswith('billing_sync') and m not in ours); "
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    heavy = [line for line in out.stdout.splitlines() if line.startswith("HEAVY=")]
    assert heavy == ["HEAVY="], f"heavy modules imported at parse time: {heavy}"
