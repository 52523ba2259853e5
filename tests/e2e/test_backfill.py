"""`airflow backfill create` over three billing dates, run by a real scheduler (LocalExecutor).

Each billing date must find its own invoice; the two older ones run report-only and write nothing
to ConnectWise; the newest pushes. Every task runs in its own process, fed by the API server.

The test is the same on any day: the scenario's billing dates are computed from the clock the
Airflow processes see, and it runs with that clock at three points (libfaketime moves the clock of
every Airflow process and its children by one fixed offset): the real today, a billing day just
after its midnight tick, and the middle of a month. Unpausing the DAG lets the scheduler create the
run of the latest billing day that has passed (Airflow's `catchup=False`); that is the backfill's
newest date here, so the scheduler adds no run of its own and the three runs are the backfill's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate
from tests.conftest import ROOT, _airflow_db_template, migrate_airflow_db
from tests.e2e.conftest import DAG_ID

sys.path.insert(0, str(ROOT / "scripts"))
import airflow_commands  # noqa: E402  (the scripts' runner of several airflow commands in one interpreter)

pytestmark = pytest.mark.e2e
AIRFLOW = str(Path(sys.executable).with_name("airflow"))

# The clock the Airflow processes see: None = the real one.
CLOCKS = {
    "today": None,
    "billing-day-after-tick": datetime(2027, 1, 1, 0, 0, 20, tzinfo=UTC),
    "mid-month": datetime(2027, 3, 17, 13, 5, tzinfo=UTC),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _months_back(d: date, k: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - k, 12)
    return date(y, m + 1, d.day)


def _clock(fake_now: datetime | None) -> tuple[list[str], datetime]:
    """(the command prefix that moves a process's clock to `fake_now`, the now it starts at)."""
    real_now = datetime.now(UTC)
    if fake_now is None:
        return [], real_now
    faketime = shutil.which("faketime")
    assert faketime, "faketime is missing: `make test` installs Debian's faketime"
    offset = round((fake_now - real_now).total_seconds())
    # -m: the thread-safe library (the scheduler and the API server are threaded).
    return [faketime, "-m", "-f", f"{offset:+d}"], fake_now


@pytest.fixture(scope="module")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly migrated, empty metadata DB, copied into each clock's AIRFLOW_HOME: one migration
    instead of one per clock (the schema does not depend on the clock). The one this worker's own
    migration keeps (tests/conftest.py) when there is one."""
    migrate_airflow_db()
    template = _airflow_db_template()
    if template.exists():
        return template
    home = tmp_path_factory.mktemp("airflow-template")
    _airflow([], {**os.environ, "AIRFLOW_HOME": str(home)}, "db", "migrate")
    return home / "airflow.db"


def _airflow(prefix: list[str], env: dict, *args: str) -> str:
    done = subprocess.run([*prefix, AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, f"airflow {' '.join(args)}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    return done.stdout


def _setup_commands(dates: list[str]) -> list[list[str]]:
    """Serialize the DAG, create the backfill over `dates` (one run at a time, as the README says),
    and unpause the DAG (the scheduler then adds no run of its own, see the module docstring)."""
    backfill = ["--dag-id", DAG_ID, "--max-active-runs", "1", "--from-date", dates[0], "--to-date", dates[-1]]
    return [["dags", "reserialize"], ["backfill", "create", *backfill], ["dags", "unpause", DAG_ID]]


def _backfill_runs(db: sa.Engine) -> list[dict]:
    try:
        with db.connect() as c:
            rows = c.execute(sa.text("select * from billing_runs")).mappings()
            return [dict(r) for r in rows if r["run_id"].startswith("backfill__")]
    except sa.exc.OperationalError:  # the first task has not created the tables yet
        return []


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _wait_for_health(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}"
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {timeout:.0f}s")


def _wait_for_runs(
    db: sa.Engine, metadata: sa.Engine, n: int, procs: list[subprocess.Popen], timeout: float
) -> list[dict]:
    """The billing runs of the backfill once all `n` are recorded and their DAG runs have ended."""
    deadline = time.monotonic() + timeout
    rows: list[dict] = []
    while time.monotonic() < deadline:
        for p in procs:
            assert p.poll() is None, f"{p.args} exited with {p.returncode}"
        rows = _backfill_runs(db)
        if len(rows) == n and all(r["finished_at"] for r in rows):
            with metadata.connect() as c:
                states = (
                    c.execute(sa.text("select state from dag_run where run_type = 'backfill'"))
                    .scalars()
                    .all()
                )
            if len(states) == n and all(s in ("success", "failed") for s in states):
                return rows
        time.sleep(2)
    raise AssertionError(f"backfill did not finish in {timeout:.0f}s; runs so far: {rows}")


@pytest.mark.parametrize("clock", list(CLOCKS), ids=list(CLOCKS))
def test_backfill_three_billing_dates(clock, migrated_db, sandbox_factory, tmp_path):
    prefix, now = _clock(CLOCKS[clock])
    newest = date(now.year, now.month, 1)  # billing_day 1: the latest billing day that has passed
    dates = [_months_back(newest, k).isoformat() for k in (2, 1, 0)]
    scenario = generate(40, 11, billing_date=newest)
    sb = sandbox_factory(scenario)
    port = _free_port()
    billing_db = tmp_path / "billing.db"
    metadata = sa.create_engine(f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}")
    env = {
        **os.environ,
        **sb.connections(),
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # One secret for the tokens the scheduler signs and the API server checks: set here, not
        # generated into airflow.cfg by whichever process starts first (they start side by side).
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "AIRFLOW_CONN_BILLING_SYNC_DB": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{billing_db}"}}
        ),
        "BILLING_SYNC_REPORTS_DIR": str(tmp_path / "reports"),
    }
    (tmp_path / "airflow").mkdir()
    shutil.copyfile(migrated_db, tmp_path / "airflow" / "airflow.db")

    logs = tmp_path / "logs"
    logs.mkdir()

    def start(cmd: list[str], log: str) -> subprocess.Popen:
        # A session of its own: the API server's worker outlives a SIGTERM to its parent alone.
        return subprocess.Popen(
            [*prefix, *cmd],
            env=env,
            stdout=open(logs / f"{log}.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    # The execution API only: tasks need nothing else of the API server, and it starts faster. The
    # setup commands run meanwhile, in one interpreter (scripts/airflow_commands.py).
    procs = [start([AIRFLOW, "api-server", "--apps", "execution", "--port", str(port)], "api-server")]
    try:
        setup = start(airflow_commands.command(sys.executable, _setup_commands(dates)), "setup")
        assert setup.wait(timeout=180) == 0, (logs / "setup.log").read_text()[-3000:]
        # Tasks talk to the API server from their first line: a scheduler started before it answers
        # fails the first task on a timeout and its retry waits minutes.
        _wait_for_health(f"http://127.0.0.1:{port}/execution/health", procs[0], timeout=120)
        procs.append(start([AIRFLOW, "scheduler"], "scheduler"))
        runs = _wait_for_runs(
            sa.create_engine(f"sqlite:///{billing_db}"),
            metadata,
            3,
            procs,
            timeout=420,
        )
    finally:
        for p in procs:
            _signal_group(p, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            _signal_group(p, signal.SIGKILL)  # whatever of the group is left

    by_date = {str(r["billing_date"]): r for r in runs}
    assert sorted(by_date) == dates
    invoice_of = {i["created_at"][:10]: i["id"] for i in scenario["huntress"]["invoices"]}
    for day in dates:
        assert by_date[day]["invoice_id"] == invoice_of[day], f"{day} must sync its own invoice"
        assert by_date[day]["status"] == "success"
    assert [by_date[d]["mode"] for d in dates] == ["report_only", "report_only", "push"]

    with sa.create_engine(f"sqlite:///{billing_db}").connect() as c:
        actions = c.execute(
            sa.text("select run_id, action, count(*) from billing_changes group by run_id, action")
        ).all()
    updated = {run_id: n for run_id, action, n in actions if action == "updated"}
    assert set(updated) <= {by_date[dates[-1]]["run_id"]}, "historical runs must not write"
    patches = sum(
        n
        for route, n in httpx.get(f"{sb.connectwise_url}/_sandbox/requests").json()["by_route"].items()
        if route.startswith("PATCH")
    )
    assert patches == updated.get(by_date[dates[-1]]["run_id"], 0) > 0
    with metadata.connect() as c:
        dag_runs = c.execute(sa.text("select run_id, state, logical_date from dag_run")).mappings().all()
    assert sorted(r["state"] for r in dag_runs if r["run_id"].startswith("backfill__")) == ["success"] * 3
    # Unpausing created no run of a billing date before the newest: the scheduler's own run, if any,
    # is for the newest billing date or a later one (a tick that passed during the test).
    scheduled = [str(r["logical_date"])[:10] for r in dag_runs if r["run_id"].startswith("scheduled__")]
    assert all(d >= dates[-1] for d in scheduled), scheduled
