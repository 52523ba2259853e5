"""A real executor: LocalExecutor runs every task in a process of its own, against a PostgreSQL
metadata database and a PostgreSQL billing database, and ConnectWise ends as the oracle says.

What Airflow 3 needs for that (read from airflow/executors/local_executor.py, base_executor.py and
sdk/execution_time/supervisor.py): LocalExecutor's workers run each task through the Task SDK
supervisor, which talks to the Execution API at [core] execution_api_server_url with a JWT signed
by the scheduler side ([api_auth] jwt_secret must be the same on both). So the test runs
`airflow db migrate`, then `airflow api-server --apps execution`, then
`airflow dags test ... --use-executor` (dag.test(use_executor=True)), all as separate processes
sharing only the metadata database, the JWT secret and the environment's connections.

Airflow 3 also builds an async engine for the metadata database on start; it derives it from the
sync URL and uses the pinned asyncpg, as a production deployment does (docs/deployment.md).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate
from billing_sync import store
from tests.conftest import ROOT
from tests.helpers.oracle import expected_state
from tests.proof.conftest import DAG_ID, password_database, postgres_base_or_skip
from tests.proof.helpers import (
    BILLING_DATE,
    connection_env,
    cw_quantities,
    found_in,
    metadata_database,
    metadata_rows,
    needles,
    scan_database,
    scan_files,
)
from tests.proof.servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

AIRFLOW = Path(sys.executable).with_name("airflow")
STEP_TIMEOUT_S = 240
SHUTDOWN_GRACE_S = 20
XCOM_LIMIT_BYTES = 4096  # references only: a frame would be far bigger


def airflow_env(home: Path, metadata_url: str, api_port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    plugins = home / "plugins"  # none: this test is about executing tasks, not the UI
    plugins.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "GX_ANALYTICS_ENABLED": "false",
            **extra,
        }
    )
    return env


def run(
    args: list[str], env: dict[str, str], log: Path, finished: Callable[[], bool] = lambda: False
) -> subprocess.CompletedProcess:
    """Run an airflow command in its own process group; kill the whole group if it overruns.

    `finished()` says the command's work is done (read from the metadata database). LocalExecutor's
    shutdown joins its workers without a timeout and now and then never returns (apache/airflow
    #45683, #67870): once the work is done the command gets SHUTDOWN_GRACE_S to exit, then its
    process group is killed and the returncode is None.
    """
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(AIRFLOW), *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline, done_at = time.monotonic() + STEP_TIMEOUT_S, None
        while proc.poll() is None:
            now = time.monotonic()
            if done_at is None and finished():
                done_at = now
            if now > deadline or (done_at is not None and now - done_at > SHUTDOWN_GRACE_S):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                if done_at is None:
                    raise AssertionError(f"airflow {args[0]} overran {STEP_TIMEOUT_S}s; see {log}")
                return subprocess.CompletedProcess(args, None, log.read_text(), "")
            time.sleep(0.5)
    return subprocess.CompletedProcess(args, proc.returncode, log.read_text(), "")


@contextmanager
def execution_api(env: dict[str, str], port: int, log: Path) -> Iterator[None]:
    out = log.open("w")
    proc = subprocess.Popen(
        [
            str(AIRFLOW),
            "api-server",
            "--apps",
            "execution",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}/execution/health", proc, log)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()


def wait_healthy(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STEP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"the API server exited: {log.read_text()[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"the API server did not answer {url}")


def test_local_executor_runs_each_task_in_its_own_process(sandbox_factory, tmp_path):
    base = postgres_base_or_skip()
    scenario = generate(40, 7)
    sb = sandbox_factory(scenario)
    want, _ = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    home, port = tmp_path / "airflow", free_port()
    with metadata_database(base) as metadata_url, password_database(base) as (billing_uri, pg_password):
        extra = {
            **connection_env(scenario, sb.huntress_url, sb.connectwise_url),
            "AIRFLOW_CONN_BILLING_SYNC_DB": billing_uri,
            "BILLING_SYNC_REPORTS_DIR": str(tmp_path / "reports"),
        }
        env = airflow_env(home, metadata_url, port, extra)
        migrated = run(["db", "migrate"], env, tmp_path / "migrate.log")
        assert migrated.returncode == 0, migrated.stdout[-3000:]
        with execution_api(env, port, tmp_path / "api-server.log"):
            done = run(
                ["dags", "test", DAG_ID, BILLING_DATE, "--use-executor"],
                env,
                tmp_path / "dags-test.log",
                finished=lambda: run_finished(metadata_url),
            )
        assert done.returncode in (0, None), done.stdout[-5000:]
        assert "executor=LocalExecutor" in done.stdout

        check_metadata(metadata_url, home)
        assert cw_quantities(sb.connectwise_url) == want
        billing = sa.create_engine(billing_uri.replace("postgresql://", "postgresql+psycopg2://", 1))
        check_billing(billing)
        h, c = scenario["huntress"], scenario["connectwise"]
        wanted = needles(
            {
                "postgres password": pg_password,
                "huntress secret": h["api_secret"],
                "connectwise private key": c["private_key"],
            },
            [(h["api_key"], h["api_secret"]), (f"{c['company_id']}+{c['public_key']}", c["private_key"])],
        )
        assert scan_files(home / "logs", wanted) == {}
        assert found_in(done.stdout, wanted) == []
        assert scan_database(billing, wanted) == {}
        billing.dispose()


def run_finished(metadata_url: str) -> bool:
    try:
        states = metadata_rows(metadata_url, "select state from dag_run where dag_id = :d", d=DAG_ID)
    except sa.exc.DBAPIError:  # not migrated yet, or busy: ask again
        return False
    return any(state in ("success", "failed") for (state,) in states)


def check_metadata(metadata_url: str, home: Path) -> None:
    """One process per task instance, each with its own log file; only references in XCom."""
    (state,) = metadata_rows(metadata_url, "select state from dag_run where dag_id = :d", d=DAG_ID)
    assert state == ("success",)
    tis = metadata_rows(
        metadata_url, "select task_id, map_index, state, pid from task_instance where dag_id = :d", d=DAG_ID
    )
    assert {t.task_id for t in tis} == {
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
    assert {t.state for t in tis} == {"success"}
    pids = [t.pid for t in tis]
    assert None not in pids and len(set(pids)) == len(tis), f"one process per task: {tis}"
    assert os.getpid() not in pids
    logs = list((home / "logs").rglob("attempt=1.log"))
    assert {p for log in logs for p in log.parts if p.startswith("task_id=")} == {
        f"task_id={t.task_id}" for t in tis
    }
    sizes = metadata_rows(
        metadata_url, "select task_id, key, length(value::text) from xcom where dag_id = :d", d=DAG_ID
    )
    assert sizes and max(n for _, _, n in sizes) < XCOM_LIMIT_BYTES, sorted(sizes, key=lambda s: -s[2])[:3]


def check_billing(billing: sa.Engine) -> None:
    """The frames went through the billing database's staging tables, not through memory."""
    with billing.connect() as conn:
        (run_id, status, counts) = conn.execute(
            sa.text("select run_id, status, counts from billing_runs")
        ).one()
        staged = {
            t.name: conn.execute(
                sa.select(sa.func.count()).select_from(t).where(t.c.run_id == run_id)
            ).scalar()
            for t in (store.staging_table(n) for n in ("usage", "additions", "outcomes"))
        }
    assert status == "success" and json.loads(counts)["updated"] > 0
    assert all(staged.values()), staged
