"""Shared fixtures: a real sandbox process, and real billing databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
DEMO_SCENARIO = ROOT / "scenarios" / "demo.json"

# Tests own their Airflow: a private AIRFLOW_HOME (metadata DB, billing DB, reports), set before
# anything imports Airflow, so a test run never touches the demo's or a developer's installation.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="billing-test-airflow-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["GX_ANALYTICS_ENABLED"] = "false"
os.environ.pop("AIRFLOW_CONN_BILLING_SYNC_DB", None)

# Hypothesis profiles, chosen with HYPOTHESIS_PROFILE (or --hypothesis-profile):
#   quick     the default: a few seconds, the same examples every run
#   ci        as many cases as the seeded loop the property test replaced ran (150), the same every run
#   thorough  1000, new ones each run (minutes): before a release, after touching reconcile
# No example database: nothing is written into the working tree; a failure prints its
# @reproduce_failure blob instead. No deadline: a loaded machine is no failure.
_HYPOTHESIS = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    "suppress_health_check": [HealthCheck.too_slow],
}
settings.register_profile("quick", max_examples=20, derandomize=True, **_HYPOTHESIS)
settings.register_profile("ci", max_examples=150, derandomize=True, **_HYPOTHESIS)
settings.register_profile("thorough", max_examples=1000, **_HYPOTHESIS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))

# Markers by place (pyproject lists them): every test under a folder, or in a file, named here carries
# them, so a new file there is slow-marked without anyone remembering to. `make test-fast` leaves out
# e2e, browser, integration and perf; `make test` runs everything.
PLACE_MARKERS: dict[str, tuple[str, ...]] = {
    "e2e": ("e2e",),  # dag.test() and a real scheduler
    "e2e/test_backfill.py": ("integration",),  # a real scheduler with LocalExecutor, under faketime
    "proof": ("e2e", "integration"),  # faults through proxies, crash/resume, security scans, executors
    "ui/test_browser.py": ("e2e", "integration"),  # a real DAG run, the real API server, Chromium
    "ui/test_month_close.py": ("e2e", "integration"),  # a month closed at the desk: DAG runs, Chromium
    "test_packaging.py": ("integration",),  # builds the wheels with pip
    "test_airflow_local.py": ("integration",),  # `make airflow`'s process trees, stopped by signals
    # whole billing runs, every step against a sandbox over HTTP, several per test; the runs that are
    # about their data (money, new organizations, overrides) are served in memory and stay fast
    "sync/test_approvals_run.py": ("integration",),
}

# Tests that assert on time, import cost or scale, or wait out real rate-limit windows, by name (they
# move between files): `perf`. Slow, and the first to suffer on a busy machine.
PERF_TESTS = frozenset(
    {
        "test_100k_usage_rows_write_and_read_in_batches",  # 100,000 staging rows through the billing database
        "test_100k_usage_rows_against_100k_additions",  # reconcile at scale
        "test_scale_5000_organizations",  # the scenario generator at 5,000 organizations
        "test_compiled_predicate_is_fast_over_20k_records",  # the sandbox's conditions
        "test_export_streams_every_row_in_pieces_in_little_memory",  # an export's memory under tracemalloc
        "test_huntress_client_limiter_avoids_429",  # Huntress's 60-a-minute window, on the clock
        "test_huntress_headerless_429s_from_a_shared_key_lose_nothing",
        "test_huntress_429_is_waited_out",
        "test_huntress_rate_limit_wait_is_bounded",
        "test_sliding_window_rate_limit",
        "test_tenants_of_one_account_never_get_a_429_back_to_back",  # a 6 s Huntress window, shared
        # what a fresh interpreter imports or costs: a new Python and Airflow's imports each (seconds)
        "test_dag_file_imports_nothing_heavy",
        "test_import_is_cheap",
        "test_billing_day_comes_from_the_environment_without_loading_the_task_runtime",
    }
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        if getattr(item, "originalname", item.name) in PERF_TESTS:
            item.add_marker("perf")
        try:
            rel = item.path.resolve().relative_to(tests).as_posix()
        except ValueError:
            continue
        for place, markers in PLACE_MARKERS.items():
            if rel == place or rel.startswith(place + "/"):
                for marker in markers:
                    item.add_marker(marker)


def pytest_configure(config: pytest.Config) -> None:
    from tests.helpers import slow_first

    # Under xdist, the slow tests first in each worker's block (tests/helpers/slow_first.py).
    config.pluginmanager.register(slow_first, "slow_first")


@functools.cache
def migrate_airflow_db() -> None:
    """`airflow db migrate` of this process's AIRFLOW_HOME (above), once per test process: the e2e,
    proof and page tests share one metadata DB per pytest-xdist worker.

    The migrated SQLite file is kept as a template, named by Airflow's version and migrations, and
    each later test process copies it (milliseconds) instead of migrating again (15 to 30 s of a
    CPU here, paid by every worker of every run before). A database set by AIRFLOW__DATABASE__
    SQL_ALCHEMY_CONN (PostgreSQL in CI) is migrated as before."""
    home_db = Path(os.environ["AIRFLOW_HOME"]) / "airflow.db"
    template = None if os.environ.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") else _airflow_db_template()
    if template is not None and template.exists():
        # Through SQLite, not as a file copy: a connection this process already holds to the empty
        # database then sees the new tables, as it sees those a migration makes.
        source, target = sqlite3.connect(template), sqlite3.connect(home_db)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return
    airflow = Path(sys.executable).with_name("airflow")
    done = subprocess.run([str(airflow), "db", "migrate"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    if template is not None and home_db.exists():
        partial = template.with_suffix(f".{os.getpid()}.part")
        shutil.copyfile(home_db, partial)
        os.replace(partial, template)  # whole or absent: another worker may be copying it


def _airflow_db_template() -> Path:
    """Where the migrated metadata database of this Airflow (version and migration files) is kept."""
    import hashlib
    from importlib.metadata import version

    import airflow

    migrations = Path(airflow.__file__).parent / "migrations" / "versions"
    names = sorted(p.name for p in migrations.glob("*.py"))
    key = hashlib.sha256("\n".join([version("apache-airflow"), *names]).encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "billing-test-airflow-templates"
    folder.mkdir(exist_ok=True)
    return folder / f"airflow-{key}.db"


@dataclass
class Sandbox:
    process: subprocess.Popen
    huntress_url: str
    connectwise_url: str
    scenario: dict[str, Any]

    def connections(self, **kw: Any) -> dict[str, str]:
        """AIRFLOW_CONN_* values pointing the sync at this sandbox (see billing_sandbox.connections)."""
        from billing_sandbox.connections import airflow_connections

        return airflow_connections(self.scenario, self.huntress_url, self.connectwise_url, **kw)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_sandbox(scenario: dict[str, Any] | Path, tmp_dir: Path, *extra: str) -> Sandbox:
    """Start `python -m billing_sandbox` on free ports and wait for its JSON line."""
    if isinstance(scenario, dict):
        path = tmp_dir / f"scenario-{uuid.uuid4().hex[:8]}.json"
        path.write_text(json.dumps(scenario))
        data = scenario
    else:
        path = scenario
        data = json.loads(path.read_text())
    proc = subprocess.Popen(
        [sys.executable, "-m", "billing_sandbox", "--scenario", str(path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise RuntimeError(f"sandbox did not start: {proc.stderr.read()}")
    urls = json.loads(line)
    return Sandbox(proc, urls["huntress_url"], urls["connectwise_url"], data)


@pytest.fixture
def sandbox_factory(tmp_path: Path) -> Iterator:
    started: list[Sandbox] = []

    def factory(scenario: dict[str, Any] | Path = DEMO_SCENARIO, *extra: str) -> Sandbox:
        sb = start_sandbox(scenario, tmp_path, *extra)
        started.append(sb)
        return sb

    yield factory
    for sb in started:
        sb.stop()


def _postgres_base_url() -> str | None:
    """TEST_DATABASE_URL with the driver made explicit: SQLAlchemy 2.1 reads a bare
    `postgresql://` as psycopg 3, and the project ships psycopg2."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url and url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def _postgres_available(url: str) -> bool:
    import sqlalchemy as sa

    try:
        with sa.create_engine(url).connect() as conn:
            conn.execute(sa.text("select 1"))
        return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty billing database URL: a SQLite file, or a private schema on PostgreSQL.

    PostgreSQL tests skip (with the reason) when TEST_DATABASE_URL is unset or unreachable,
    unless REQUIRE_POSTGRES=1, where that is a failure: CI must never skip them silently.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billing.db'}"
        return
    base = _postgres_base_url()
    required = os.environ.get("REQUIRE_POSTGRES") == "1"
    if not base or not _postgres_available(base):
        why = "TEST_DATABASE_URL unset" if not base else f"PostgreSQL unreachable at {base}"
        if required:
            pytest.fail(f"REQUIRE_POSTGRES=1 but {why}")
        pytest.skip(why)
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()
