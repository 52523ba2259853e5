"""End-to-end fixtures: a migrated Airflow metadata DB and connections pointing at a sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.conftest import ROOT, Sandbox, migrate_airflow_db

DAG_ID = "huntress_connectwise_billing_sync"


@pytest.fixture(scope="session")
def airflow_db() -> None:
    migrate_airflow_db()


@pytest.fixture
def run_dag(airflow_db, monkeypatch, tmp_path):
    """Run the DAG with `dag.test()` against a sandbox; returns the DagRun."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_SYNC_DB",
        json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{tmp_path / 'billing.db'}"}}
        ),
    )
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))

    def run(sb: Sandbox, billing_date: str, conf: dict | None = None):
        for k, v in sb.connections().items():
            monkeypatch.setenv(k, v)
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(ROOT / "dags")).dags[DAG_ID]
        day = datetime.fromisoformat(billing_date).replace(tzinfo=UTC)
        return dag.test(logical_date=day, run_conf=conf or {})

    return run
