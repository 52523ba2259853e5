"""CeleryExecutor for real: two workers "on separate machines", three tenants' runs at once, the
broker (Redis) restarted under them, and one worker SIGKILLed mid-task whose work finishes on the other.

The test runs `make celery`'s own script (scripts/airflow_celery.py --json) against a fresh
PostgreSQL metadata database, a PostgreSQL billing database and a Redis of its own (`--redis`;
tests/proof/servers.py: the shared one serves other tests and people, and this test restarts its
broker). The script starts one sandbox per tenant, the API server (execution app only), scheduler,
DAG processor and two `airflow celery worker`s, each with its own name (`[core] hostname_callable`,
so `task_instance.hostname` says which worker ran a try), its own AIRFLOW_HOME and working
directory, sharing only what real machines would share: the databases, the broker, the reports
folder and the task logs. It triggers one run per tenant.

Once every run has finished a task and has another queued or running, Redis is restarted (stopped,
1 s down, started): without persistence, as CI runs it, so every key is lost, queued messages and
Celery's queue bindings included. The scheduler and the workers reconnect; a task whose message was
lost is requeued by the scheduler after [scheduler] task_queued_timeout. No task may run twice to a
different result: each task has one successful try, and each ConnectWise addition is changed at most
once.

Then, from the metadata database: once a worker has finished a task of every run and is running
another, the worker's whole process tree is SIGKILLed (a machine lost). The task's heartbeat
stops; the scheduler fails it after [scheduler] task_instance_heartbeat_timeout (20 s here) and it is
retried on the other worker. The DAG's retry delay (2 minutes, doubling) is capped by
[core] max_task_retry_delay, an Airflow setting: the DAG is not touched.

Finally each tenant's ConnectWise holds exactly what the independent oracle
(tests.e2e.test_sync_e2e.expected_state) computes from that tenant's scenario, and each tenant's rows
in the billing database are its own: ledger, quarantine, runs, staged usage, organizations seen.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import psutil
import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.helpers.oracle import expected_state, invoice_of
from tests.proof.conftest import password_database, postgres_base_or_skip
from tests.proof.helpers import admin, cw_quantities, metadata_database, metadata_rows
from tests.proof.servers import PrivateRedis, free_port, private_redis

sys.path.insert(0, str(ROOT / "scripts"))
import airflow_celery  # noqa: E402  (make celery's script: the test runs what a person runs)

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.postgres]

TENANTS = {"north": (24, 31), "south": (30, 32), "east": (36, 33)}  # id → (organizations, seed)
# west bills from north's Huntress account (its connection, its pool) with a ConnectWise of its own
# that starts from north's books; north's account allows HUNTRESS_LIMIT requests per window, fewer
# than two runs make, so two tenants calling it at once would be refused (429).
SHARING = {"west": "north"}
HUNTRESS_LIMIT, HUNTRESS_WINDOW_S = 4, 10
WORKERS = ("worker-a:3", "worker-b:2")
READY_TIMEOUT_S = 180
RUNS_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60
HEARTBEAT_TIMEOUT_S = 20
BROKER_DOWN_S = 1.0
RUN_ID = "manual__2026-11-01T00:00:00+00:00"
LEDGER_TABLES = ("billing_runs", "billing_changes", "billing_quarantine", "billing_organizations_seen")

# The knobs of this test; the cluster itself is `make celery`'s. A lost worker's task is failed
# after HEARTBEAT_TIMEOUT_S (the supervisor heartbeats every 2 s), its retry waits 1 s instead of
# the DAG's minutes, and a task sent to the dead worker but never started is sent again after 60 s.
SETTINGS = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT_S),
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
    "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "2",
    "AIRFLOW__CORE__MAX_TASK_RETRY_DELAY": "1",
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "60",
    # No task waits in Redis behind others here, so none nears the 60 s above but a lost worker's.
    "AIRFLOW__CORE__PARALLELISM": str(sum(int(w.split(":")[1]) for w in WORKERS)),
    "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "5",
}


def test_celery_two_workers_three_tenants_redis_restarted_one_worker_killed(tmp_path):
    started = time.monotonic()
    base = postgres_base_or_skip()
    scenarios = {t: airflow_celery.tenant_scenario(t, n, seed) for t, (n, seed) in TENANTS.items()}
    scenarios["north"]["huntress"].update(
        rate_limit_per_minute=HUNTRESS_LIMIT, rate_limit_window_s=HUNTRESS_WINDOW_S
    )
    for t, scenario in scenarios.items():
        (tmp_path / f"{t}.json").write_text(json.dumps(scenario))
    scenarios.update({t: scenarios[owner] for t, owner in SHARING.items()})
    prefix = f"billing-test-{uuid.uuid4().hex[:10]}:"
    with (
        private_redis() as broker,
        metadata_database(base) as metadata_url,
        password_database(base) as (billing_uri, _),
    ):
        args = script_args(tmp_path, metadata_url, billing_uri, broker.url, prefix)
        with ScriptRun(args, script_env(tmp_path), tmp_path / "airflow_celery.log") as cluster:
            tenants = cluster.ready["tenants"]
            dag_ids = [info["dag_id"] for info in tenants.values()]
            in_flight = restart_the_broker_mid_runs(cluster, broker, dag_ids)
            victim, killed = kill_a_worker_mid_task(cluster, dag_ids)
            states = wait_for_runs(cluster, dag_ids)
            quantities = {t: cw_quantities(info["connectwise_url"]) for t, info in tenants.items()}
            audits = {t: audit_trail(info["connectwise_url"]) for t, info in tenants.items()}
            refused = huntress_refusals(tenants["north"]["huntress_url"])

        assert states == dict.fromkeys(dag_ids, "success"), states
        check_both_workers_ran_each_run(metadata_url, dag_ids)
        check_the_killed_task_was_retried(metadata_url, killed, victim)
        again = check_no_task_succeeded_twice(metadata_url, dag_ids)
        for t, audit in audits.items():
            assert all(n == 1 for n in audit.values()), f"tenant {t}: an addition was written twice"
        check_one_account_one_caller_at_a_time(metadata_url, tenants, refused)
        for t, scenario in scenarios.items():
            want, _ = expected_state(scenario, date.fromisoformat(tenants[t]["billing_date"]))
            assert quantities[t] == want, f"tenant {t}: ConnectWise differs from the oracle"
        billing = sa.create_engine(billing_uri.replace("postgresql://", "postgresql+psycopg2://", 1))
        try:
            check_billing(billing, scenarios, tenants, Path(cluster.ready["reports"]))
        finally:
            billing.dispose()
    print(
        f"\ncelery: Redis restarted once ({BROKER_DOWN_S:g} s down) with {in_flight} task(s) queued or "
        f"running, one worker killed; {len(dag_ids)} runs succeeded; "
        f"{sum(len(a) for a in audits.values())} additions written, duplicates 0; "
        f"{again} task(s) tried again; {time.monotonic() - started:.0f} s"
    )


# --- the cluster -----------------------------------------------------------------------------------


def script_args(
    tmp_path: Path, metadata_url: str, billing_uri: str, redis_url: str, prefix: str
) -> list[str]:
    return [
        "--json",
        "--home",
        str(tmp_path / "cluster"),
        "--tenants",
        ",".join([*TENANTS, *SHARING]),
        *(f"--scenario={t}={tmp_path / f'{t}.json'}" for t in TENANTS),
        *(f"--share-huntress={t}={owner}" for t, owner in SHARING.items()),
        *(f"--worker={w}" for w in WORKERS),
        "--metadata-url",
        metadata_url,
        "--billing-url",
        billing_uri,
        "--redis",
        redis_url,
        "--redis-prefix",
        prefix,
        "--port",
        str(free_port()),
        "--apps",
        "execution",
        # One run id for all three, as their scheduled runs would have: rows keyed (tenant, run id).
        "--run-id",
        RUN_ID,
    ]


def script_env(tmp_path: Path) -> dict[str, str]:
    """This process's environment without its Airflow settings (tests/conftest.py's home, connections)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "BILLING_SYNC_"))
    }
    plugins = tmp_path / "plugins"  # none: this test is about executing tasks, not the UI
    plugins.mkdir()
    env.update(
        {
            "AIRFLOW_HOME": str(tmp_path / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "GX_ANALYTICS_ENABLED": "false",
            **SETTINGS,
        }
    )
    return env


class ScriptRun:
    """The script in its own session, `ready` its JSON line. On exit SIGTERM (the script stops its
    children), then SIGKILL to whatever of its tree is left: a failing test leaves no process behind."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.home = Path(args[args.index("--home") + 1])
        self.metadata_url = args[args.index("--metadata-url") + 1]

    def __enter__(self) -> ScriptRun:
        self.err = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "airflow_celery.py"), *self.args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=self.err,
            text=True,
            start_new_session=True,
        )
        try:
            self.ready = self._ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _ready(self) -> dict[str, Any]:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if select.select([self.proc.stdout], [], [], 1)[0]:
                line = self.proc.stdout.readline()
                if line:
                    return json.loads(line)
            if self.proc.poll() is not None:
                break
        raise AssertionError(f"make celery's script did not get ready:\n{self.tail()}")

    def tail(self) -> str:
        """The script's output and the end of each component's log, for a failure's message."""
        self.err.flush()
        text = self.log.read_text()[-3000:]
        for log in sorted((self.home / "logs").glob("*.log")):
            text += f"\n--- {log.name}\n" + log.read_text()[-1500:]
        return text

    def __exit__(self, *exc: object) -> None:
        try:
            tree = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.Error:
            tree = []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for p in tree:
            try:
                p.kill()
            except psutil.Error:
                pass
        self.proc.stdout.close()
        self.err.close()


def kill_machine(pid: int) -> None:
    """SIGKILL a worker as a lost machine: its process group, and the task runners that Airflow puts
    in groups of their own (they would otherwise run on, orphaned)."""
    tree = [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]
    os.killpg(pid, signal.SIGKILL)
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) and _alive(p) for p in tree):
        time.sleep(0.1)
    assert not any(_alive(p) for p in tree), "the killed worker's processes are still running"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def tries(metadata_url: str, dag_ids: list[str]) -> list[sa.Row]:
    """Every try of every task of these DAGs: earlier tries (history) and the current one."""
    return metadata_rows(
        metadata_url,
        """
        select dag_id, task_id, map_index, try_number, state, hostname from task_instance
         where dag_id = any(:ids)
        union all
        select dag_id, task_id, map_index, try_number, state, hostname from task_instance_history
         where dag_id = any(:ids)
        """,
        ids=dag_ids,
    )


def run_states(metadata_url: str, dag_ids: list[str]) -> dict[str, str]:
    rows = metadata_rows(
        metadata_url, "select dag_id, state from dag_run where dag_id = any(:ids)", ids=dag_ids
    )
    return {r.dag_id: r.state for r in rows}


def restart_the_broker_mid_runs(cluster: ScriptRun, broker: PrivateRedis, dag_ids: list[str]) -> int:
    """Restart Redis once every run has finished a task and has another queued or running: messages
    are in the broker or unacknowledged by a worker, and most of each run is still to be sent.
    Returns how many tasks were queued or running."""
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = tries(cluster.metadata_url, dag_ids)
        done = {r.dag_id for r in rows if r.state == "success"}
        busy = {(r.dag_id, r.task_id, r.map_index) for r in rows if r.state in ("queued", "running")}
        if done == set(dag_ids) and busy:
            broker.restart(down_s=BROKER_DOWN_S)
            return len(busy)
        if finished(run_states(cluster.metadata_url, dag_ids), dag_ids):
            raise AssertionError(f"the runs finished before the broker could be restarted: {rows}")
        time.sleep(0.2)
    raise AssertionError(f"no moment with a task done in every run and one in flight:\n{cluster.tail()}")


def kill_a_worker_mid_task(cluster: ScriptRun, dag_ids: list[str]) -> tuple[str, tuple]:
    """Kill a worker that finished a task of every run and is running one now: (its name, that task).

    Not at the runs' first task: each run has work done on the worker that is lost.
    """
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    while time.monotonic() < deadline:
        rows = tries(cluster.metadata_url, dag_ids)
        for worker, pid in cluster.ready["workers"].items():
            done = {r.dag_id for r in rows if r.hostname == worker and r.state == "success"}
            running = [r for r in rows if r.hostname == worker and r.state == "running"]
            if done == set(dag_ids) and running:
                kill_machine(pid)
                r = running[0]
                return worker, (r.dag_id, r.task_id, r.map_index, r.try_number)
        if finished(run_states(cluster.metadata_url, dag_ids), dag_ids):
            raise AssertionError(f"the runs finished before a worker could be killed mid-task: {rows}")
        time.sleep(0.2)
    raise AssertionError(f"no worker finished a task of every run and was running one:\n{cluster.tail()}")


def wait_for_runs(cluster: ScriptRun, dag_ids: list[str]) -> dict[str, str]:
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    while time.monotonic() < deadline:
        states = run_states(cluster.metadata_url, dag_ids)
        if finished(states, dag_ids):
            return states
        time.sleep(1)
    raise AssertionError(f"runs not finished: {states}\n{cluster.tail()}")


def finished(states: dict[str, str], dag_ids: list[str]) -> bool:
    return set(states) == set(dag_ids) and all(s in ("success", "failed") for s in states.values())


# --- the checks ------------------------------------------------------------------------------------


def audit_trail(connectwise_url: str) -> Counter:
    """How many times ConnectWise changed each addition (the sandbox's audit trail)."""
    return Counter(e["id"] for e in admin(connectwise_url, "state")["audit_trail"])


def check_no_task_succeeded_twice(metadata_url: str, dag_ids: list[str]) -> int:
    """Each task (map index included) has exactly one successful try, its last: a task tried again
    (its try lost with the worker, or its message with the broker) never ran twice to an end.
    Returns how many tasks needed more than one try."""
    by_task: dict[tuple, list] = {}
    for r in tries(metadata_url, dag_ids):
        by_task.setdefault((r.dag_id, r.task_id, r.map_index), []).append(r)
    for task, rows in by_task.items():
        wins = [r.try_number for r in rows if r.state == "success"]
        assert wins == [max(r.try_number for r in rows)], f"{task}: {rows}"
    return sum(1 for rows in by_task.values() if len(rows) > 1)


def huntress_refusals(huntress_url: str) -> int:
    """How many 429s the Huntress sandbox answered (its admin route counts every status)."""
    import httpx

    served = httpx.get(f"{huntress_url}/_sandbox/requests", timeout=10).json()
    return sum(int(c.get("429", 0)) for c in served["by_route_status"].values())


def check_one_account_one_caller_at_a_time(metadata_url: str, tenants: dict[str, dict], refused: int) -> None:
    """The tenants sharing north's Huntress account called it one task at a time (its pool has one
    slot), and the account never had to refuse a request for the rate: the limit held under both."""
    pool = f"huntress__huntress_{SHARING['west']}"
    rows = metadata_rows(
        metadata_url,
        """
        select dag_id, task_id, start_date, end_date from task_instance where pool = :pool
        union all
        select dag_id, task_id, start_date, end_date from task_instance_history where pool = :pool
        """,
        pool=pool,
    )
    sharing = {tenants[t]["dag_id"] for t in ("north", "west")}
    assert {r.dag_id for r in rows} == sharing, rows
    spans = sorted((r.start_date, r.end_date) for r in rows if r.start_date is not None)
    assert all(end is not None for _, end in spans), spans
    overlaps = [(a, b) for a, b in zip(spans, spans[1:], strict=False) if b[0] < a[1]]
    assert overlaps == [], overlaps
    assert refused == 0, f"north's Huntress account answered {refused} 429s"


def check_both_workers_ran_each_run(metadata_url: str, dag_ids: list[str]) -> None:
    rows = tries(metadata_url, dag_ids)
    workers = {w.split(":")[0] for w in WORKERS}
    ran = {d: {r.hostname for r in rows if r.dag_id == d and r.hostname} for d in dag_ids}
    assert all(hosts == workers for hosts in ran.values()), ran


def check_the_killed_task_was_retried(metadata_url: str, killed: tuple, victim: str) -> None:
    """The try that was running on the lost worker failed (no heartbeat); a later try succeeded on
    the other."""
    dag_id, task_id, map_index, try_number = killed
    rows = [r for r in tries(metadata_url, [dag_id]) if (r.task_id, r.map_index) == (task_id, map_index)]
    lost = [r for r in rows if r.try_number == try_number]
    assert [(r.hostname, r.state) for r in lost] == [(victim, "failed")], rows
    final = max(rows, key=lambda r: r.try_number)
    assert final.try_number > try_number and final.state == "success", rows
    assert final.hostname not in (None, victim), rows


def check_billing(
    billing: sa.Engine, scenarios: dict[str, dict], tenants: dict[str, dict], reports: Path
) -> None:
    """Each tenant's rows are what its own scenario implies; no row of a tenant not in the file; a
    report folder per tenant in the shared folder, written by validate and record_run whichever
    worker ran them."""
    folders = [
        check_tenant_rows(billing, t, scenario, date.fromisoformat(tenants[t]["billing_date"]))
        for t, scenario in scenarios.items()
    ]
    assert len(set(folders)) == len(scenarios), folders
    for folder in folders:
        assert folder.is_relative_to(reports), folder
        assert {"validation.json", "report.html"} <= {p.name for p in folder.iterdir()}, folder
    with billing.connect() as c:
        strays = {
            table: c.execute(
                sa.select(sa.func.count())
                .select_from(sa.table(table))
                .where(sa.column("tenant").not_in([*TENANTS, *SHARING]))
            ).scalar()
            for table in LEDGER_TABLES
        }
    assert not any(strays.values()), f"rows of no tenant of the file: {strays}"


def check_tenant_rows(billing: sa.Engine, tenant: str, scenario: dict, billing_date: date) -> Path:
    """This tenant's rows say what its own scenario implies, and nothing of another tenant's; the
    run's report folder."""
    want, reasons = expected_state(scenario, billing_date)
    before = {a["id"]: a["quantity"] for ag in scenario["connectwise"]["agreements"] for a in ag["additions"]}
    changed = {a: q for a, q in want.items() if q != before[a]}
    assert changed, f"tenant {tenant}: the scenario must need changes"
    invoice = invoice_of(scenario["huntress"]["invoices"], billing_date)
    on_invoice = {line["organization_id"] for line in invoice["lines"] if line.get("organization_id")}
    names = {o["name"] for o in scenario["huntress"]["organizations"]} | {
        o["name"]
        for a in scenario["huntress"].get("managed_accounts", [])
        for o in a.get("organizations", [])
    }
    q = {"t": tenant}
    with billing.connect() as c:
        runs = c.execute(
            sa.text("select run_id, status, counts, report_path from billing_runs where tenant = :t"), q
        ).all()
        ledger = c.execute(
            sa.text("select addition_id, new_quantity, action from billing_changes where tenant = :t"), q
        ).all()
        quarantined = c.execute(
            sa.text(
                "select reason_code, huntress_organization_name from billing_quarantine"
                " where tenant = :t and status = 'open'"
            ),
            q,
        ).all()
        seen = c.execute(
            sa.text("select huntress_organization_id from billing_organizations_seen where tenant = :t"), q
        ).all()
        staged = c.execute(
            sa.text("select distinct organization_id from billing_stg_usage where tenant = :t"), q
        ).all()
    assert [(r.run_id, r.status) for r in runs] == [(RUN_ID, "success")], runs
    assert json.loads(runs[0].counts)["updated"] == len(changed)
    assert {r.addition_id: r.new_quantity for r in ledger if r.action == "updated"} == changed
    assert all(want.get(r.addition_id) == r.new_quantity for r in ledger if r.action == "unchanged")
    assert {r.reason_code for r in quarantined} == reasons
    assert {r.huntress_organization_name for r in quarantined} - {None} <= names
    assert {r.huntress_organization_id for r in seen} == on_invoice
    assert {r.organization_id for r in staged} - {None} == on_invoice
    return Path(runs[0].report_path)
