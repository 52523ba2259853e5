"""The real DAG under dag.test(): a permanent error fails its task on the first try, a transient one
is retried. Retries keep their number; only the wait between them is set to zero on the loaded DAG
(as tests/proof does), so a regression shows as a wrong try number, not as minutes of waiting."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import ROOT

DAG_ID = "huntress_connectwise_billing_sync"
BILLING_DATE = datetime(2026, 11, 1, tzinfo=UTC)


def _run(monkeypatch, db_url: str, variable: str | None):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_SYNC_DB",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": db_url}}),
    )
    if variable is None:
        monkeypatch.delenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", variable)
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[DAG_ID]
    for task in dag.tasks:
        task.retry_delay, task.retry_exponential_backoff = timedelta(0), 0
    assert dag.default_args["retries"] == 2  # what a transient error gets
    dr = dag.test(logical_date=BILLING_DATE)
    from airflow.utils.session import create_session

    with create_session() as session:
        states = {t.task_id: (str(t.state), t.try_number) for t in dr.get_task_instances(session=session)}
    return dr, states


def test_a_broken_variable_fails_resolve_on_the_first_try(airflow_db, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    db_url = f"sqlite:///{tmp_path / 'billing.db'}"

    dr, states = _run(monkeypatch, db_url, "{not json")

    assert dr.state == "failed"
    assert states["resolve"] == ("failed", 1), states  # no retry: it would fail the same way
    assert states["wait_for_invoice"][0] == "upstream_failed"
    # What the alert says of it is tested without the scheduler's logging in the way
    # (tests/sync/test_errors.py): whether its records reach caplog depends on test order.


def test_a_transient_error_in_the_same_task_is_retried(airflow_db, monkeypatch, tmp_path: Path):
    """Control: the billing database unreachable (a directory that does not exist) is retried twice."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    dr, states = _run(monkeypatch, f"sqlite:///{tmp_path / 'missing' / 'billing.db'}", None)

    assert dr.state == "failed"
    assert states["resolve"] == ("failed", 3), states


@pytest.fixture(autouse=True)
def _no_alert_channels(monkeypatch):
    for name in ("AIRFLOW_CONN_BILLING_SYNC_SMTP", "AIRFLOW_CONN_BILLING_SYNC_SLACK"):
        monkeypatch.delenv(name, raising=False)
