"""Shared fixtures: a real sandbox process, and real billing databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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
