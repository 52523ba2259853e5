"""Two tenants of one tenants file, each its own DAG, connections and sandbox, through `dag.test()`
on the same billing date (so the same run id): each ConnectWise ends as the independent oracle of
tests/e2e/test_sync_e2e.py says, and no row of one tenant shows up as the other's (docs/contract.md §1).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate
from tests.conftest import ROOT
from tests.helpers.oracle import BILLING_DATE, expected_state
from tests.proof.helpers import cw_quantities

pytestmark = pytest.mark.e2e
DAG_ID = "huntress_connectwise_billing_sync"
TABLES = (
    "billing_runs",
    "billing_changes",
    "billing_quarantine",
    "billing_stg_usage",
    "billing_stg_outcomes",
)


def test_two_tenants_sync_side_by_side_and_keep_their_rows_apart(
    airflow_db, sandbox_factory, monkeypatch, tmp_path
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    scenarios = {"north": generate(30, 11), "south": generate(25, 12)}
    sandboxes = {t: sandbox_factory(s) for t, s in scenarios.items()}
    entries = [
        {
            "id": t,
            "huntress_conn_id": f"huntress_{t}",
            "connectwise_conn_id": f"connectwise_{t}",
            "variable": f"huntress_cw_billing_config_{t}",
            "billing_day": 1,
        }
        for t in scenarios
    ]
    (tmp_path / "tenants.json").write_text(json.dumps({"tenants": entries}), encoding="utf-8")
    monkeypatch.setenv("BILLING_SYNC_TENANTS_FILE", str(tmp_path / "tenants.json"))
    db = tmp_path / "billing.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_BILLING_SYNC_DB",
        json.dumps({"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{db}"}}),
    )
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    for t, sb in sandboxes.items():
        for k, v in sb.connections(
            huntress_conn_id=f"huntress_{t}", connectwise_conn_id=f"connectwise_{t}"
        ).items():
            monkeypatch.setenv(k, v)
        # Only the tenant's Variable says dry_run=false; the default Variable is not there at all.
        monkeypatch.setenv(
            f"AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG_{t.upper()}", json.dumps({"dry_run": False})
        )

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    billing = date.fromisoformat(BILLING_DATE)
    want = {t: expected_state(s, billing)[0] for t, s in scenarios.items()}
    runs = {}
    day = datetime.fromisoformat(BILLING_DATE).replace(tzinfo=UTC)
    for t in scenarios:
        # The same run_after too, so both runs get the same run id, as scheduled runs of a day do.
        runs[t] = bag.dags[f"{DAG_ID}__{t}"].test(logical_date=day, run_after=day)
        assert runs[t].state == "success", t
    for t, sb in sandboxes.items():
        assert cw_quantities(sb.connectwise_url) == want[t], t
    assert runs["north"].run_id == runs["south"].run_id  # the case the (tenant, run_id) keys are for

    eng = sa.create_engine(f"sqlite:///{db}")
    with eng.connect() as conn:
        recorded = conn.execute(sa.text("select tenant, run_id, counts, report_path from billing_runs")).all()
        assert {(r.tenant, r.run_id) for r in recorded} == {(t, runs[t].run_id) for t in scenarios}
        assert len({r.report_path for r in recorded}) == 2
        for table in TABLES:
            column = sa.table(table, sa.column("tenant")).c.tenant
            tenants_seen = set(conn.execute(sa.select(column).distinct()).scalars())
            assert tenants_seen <= set(scenarios), table
        for r in recorded:
            counts = json.loads(r.counts)
            ledger = conn.execute(
                sa.text("select count(*) from billing_changes where tenant = :t"), {"t": r.tenant}
            ).scalar_one()
            assert ledger == counts["updated"] + counts["unchanged"], r.tenant
            # Each tenant's ledger names additions of its own ConnectWise only.
            additions = {
                a
                for (a,) in conn.execute(
                    sa.text("select addition_id from billing_changes where tenant = :t"), {"t": r.tenant}
                )
            }
            assert additions <= set(want[r.tenant]), r.tenant
    eng.dispose()
