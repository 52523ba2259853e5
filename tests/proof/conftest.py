"""Proof fixtures: the real DAG under dag.test() with task retries that do not wait, and PostgreSQL.

Task retries: the DAG retries each task twice, 2 minutes apart, doubling. dag.test() honours that
and would sleep through it, so `dag_runner` keeps the number of retries and sets their delay to
zero on the loaded DAG object (dag.test() serializes that object into the scheduler's copy, so the
scheduler side sees the same). Nothing in the product changes for the tests.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Sandbox, _postgres_available, _postgres_base_url
from tests.e2e.conftest import airflow_db  # noqa: F401 - the session fixture, shared with the e2e tests
from tests.proof.helpers import connection_env, db_connection_env

DAG_ID = "huntress_connectwise_billing_sync"


def load_dag(retry_delay: timedelta = timedelta(0)):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags")).dags[DAG_ID]
    for task in dag.tasks:
        task.retry_delay = retry_delay
        task.retry_exponential_backoff = 0
    return dag


@pytest.fixture
def dag_runner(airflow_db, monkeypatch, tmp_path) -> Callable[..., Any]:  # noqa: F811 - pytest's fixture wiring
    """run(sb, billing_date, conf=None, *, db_url=None, max_retries=3, **conn) → the DagRun."""
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))

    def run(
        sb: Sandbox,
        billing_date: str,
        conf: dict | None = None,
        *,
        db_url: str | None = None,
        max_retries: int = 3,
        **conn: Any,
    ):
        url = db_url or f"sqlite:///{tmp_path / 'billing.db'}"
        env = {
            **connection_env(
                sb.scenario, sb.huntress_url, sb.connectwise_url, max_retries=max_retries, **conn
            ),
            **db_connection_env(url),
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        day = datetime.fromisoformat(billing_date).replace(tzinfo=UTC)
        return load_dag().test(logical_date=day, run_conf=conf or {})

    return run


def postgres_base_or_skip() -> str:
    """TEST_DATABASE_URL (psycopg2 form), with the db_url fixture's skip/require rule."""
    base = _postgres_base_url()
    if base and _postgres_available(base):
        return base
    why = "TEST_DATABASE_URL unset" if not base else f"PostgreSQL unreachable at {base}"
    if os.environ.get("REQUIRE_POSTGRES") == "1":
        pytest.fail(f"REQUIRE_POSTGRES=1 but {why}")
    pytest.skip(why)


@contextmanager
def password_database(base: str) -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL database owned by a new role with a password: (its URI, the password).

    The URI is the form the README documents for AIRFLOW_CONN_BILLING_SYNC_DB. The test server
    trusts local connections, so the password is never checked, but it travels everywhere a real
    one would: that is what the secret scans need.
    """
    import sqlalchemy as sa

    tag = uuid.uuid4().hex[:10]
    role, password = f"billing_sec_{tag}", f"pgPASSWORD{tag}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        # Identifiers cannot be bound; these are generated above from hex digits only.
        conn.execute(sa.text(f"CREATE ROLE {role} LOGIN PASSWORD :pw").bindparams(pw=password))
        conn.execute(sa.text(f"CREATE DATABASE {role} OWNER {role}"))
    url = sa.engine.make_url(base)
    try:
        yield f"postgresql://{role}:{password}@{url.host}:{url.port or 5432}/{role}", password
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {role} WITH (FORCE)"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


def task_states(dr) -> dict[str, tuple[str, int]]:
    """task_id (map index appended when mapped) → (state, try_number), read back from the metadata DB."""
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = dr.get_task_instances(session=session)
        return {
            (t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]"): (str(t.state), t.try_number)
            for t in tis
        }


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@pytest.fixture
def pg_base() -> Iterator[str]:
    yield postgres_base_or_skip()
