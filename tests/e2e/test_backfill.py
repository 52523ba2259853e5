"""`airflow backfill create` over three billing dates, run by a real scheduler (LocalExecutor).

Each billing date must find its own invoice; the two older ones run report-only and write nothing
to ConnectWise; the newest pushes. Every task runs in its own process, fed by the API server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate
from tests.e2e.conftest import DAG_ID

pytestmark = pytest.mark.e2e
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
DATES = ["2026-09-01", "2026-10-01", "2026-11-01"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _airflow(env: dict, *args: str) -> str:
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def _wait_for_runs(db: sa.Engine, n: int, procs: list[subprocess.Popen], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args[1]} exited with {p.returncode}"
        try:
            with db.connect() as c:
                rows = [dict(r) for r in c.execute(sa.text("select * from billing_runs")).mappings()]
        except sa.exc.OperationalError:  # the first task has not created the tables yet
            rows = []
        if len(rows) == n and all(r["finished_at"] for r in rows):
            return rows
        time.sleep(2)
    raise AssertionError(f"backfill did not finish in {timeout:.0f}s; runs so far: {rows}")


def test_backfill_three_billing_dates(sandbox_factory, tmp_path):
    scenario = generate(40, 11)
    sb = sandbox_factory(scenario)
    port = _free_port()
    billing_db = tmp_path / "billing.db"
    env = {
        **os.environ,
        **sb.connections(),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW_CONN_BILLING_SYNC_DB": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{billing_db}"}}),
        "BILLING_SYNC_REPORTS_DIR": str(tmp_path / "reports"),
    }
    _airflow(env, "db", "migrate")
    _airflow(env, "dags", "reserialize")
    _airflow(env, "backfill", "create", "--dag-id", DAG_ID, "--max-active-runs", "1",
             "--from-date", DATES[0], "--to-date", DATES[-1])
    _airflow(env, "dags", "unpause", DAG_ID)

    logs = tmp_path / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([AIRFLOW, cmd, *extra], env=env, stdout=open(logs / f"{cmd}.log", "w"),
                              stderr=subprocess.STDOUT)
             for cmd, extra in (("api-server", ["--port", str(port)]), ("scheduler", []))]
    try:
        runs = _wait_for_runs(sa.create_engine(f"sqlite:///{billing_db}"), 3, procs, timeout=420)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()

    by_date = {str(r["billing_date"]): r for r in runs}
    assert sorted(by_date) == DATES
    invoice_of = {i["created_at"][:10]: i["id"] for i in scenario["huntress"]["invoices"]}
    for day in DATES:
        assert by_date[day]["invoice_id"] == invoice_of[day], f"{day} must sync its own invoice"
        assert by_date[day]["status"] == "success"
        assert by_date[day]["run_id"].startswith("backfill__")
    assert [by_date[d]["mode"] for d in DATES] == ["report_only", "report_only", "push"]

    with sa.create_engine(f"sqlite:///{billing_db}").connect() as c:
        actions = c.execute(sa.text("select run_id, action, count(*) from billing_changes group by run_id, action")).all()
    updated = {run_id: n for run_id, action, n in actions if action == "updated"}
    assert set(updated) <= {by_date[DATES[-1]]["run_id"]}, "historical runs must not write"
    patches = sum(n for route, n in httpx.get(f"{sb.connectwise_url}/_sandbox/requests").json()["by_route"].items()
                  if route.startswith("PATCH"))
    assert patches == updated.get(by_date[DATES[-1]]["run_id"], 0) > 0
    listed = _airflow(env, "dags", "list-runs", DAG_ID, "-o", "json")
    dag_runs = json.loads(next(line for line in listed.splitlines() if line.startswith("[")))
    assert sorted(r["state"] for r in dag_runs if r["run_id"].startswith("backfill__")) == ["success"] * 3
