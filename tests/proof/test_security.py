"""Secrets stay in their connections; SQL never carries values in its text.

A full DAG run with distinctive secrets (Huntress API key and secret, ConnectWise public and
private key, the billing database's PostgreSQL password), then each secret — and the Basic-auth
header that carries it — is searched for in the task output and log records, AIRFLOW_HOME/logs,
the run's reports, every text of the billing database and of Airflow's metadata database (XComs
included), and in the error of a run that fails on authentication.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate
from billing_sync.http import ApiError
from billing_sync.huntress import HuntressClient
from tests.conftest import ROOT, _postgres_available, _postgres_base_url
from tests.proof.conftest import password_database, task_states
from tests.proof.helpers import (
    BILLING_DATE,
    connection_env,
    cw_quantities,
    found_in,
    needles,
    scan_database,
    scan_files,
)

pytestmark = pytest.mark.e2e

INJECTION_UNMAPPED = "'; DROP TABLE billing_runs;--"
INJECTION_MATCHED = "Robert'); DROP TABLE billing_changes;--"
UNMAPPED_ORG = 138  # "not_in_connectwise" in generate(40, 7): ends in the quarantine with its name
MATCHED_ORG, MATCHED_COMPANY = 101, 352  # matched by key: the names may be anything


def secret_scenario(tag: str) -> dict[str, Any]:
    scenario = generate(40, 7)
    h, c = scenario["huntress"], scenario["connectwise"]
    h["api_key"], h["api_secret"] = f"hkLOGIN{tag}", f"hsSECRET{tag}"
    c["public_key"], c["private_key"] = f"cwPUBLIC{tag}", f"cwPRIVATE{tag}"
    for org in h["organizations"]:
        if org["id"] == UNMAPPED_ORG:
            org["name"] = INJECTION_UNMAPPED
        if org["id"] == MATCHED_ORG:
            org["name"] = INJECTION_MATCHED
    for company in c["companies"]:
        if company["id"] == MATCHED_COMPANY:
            company["name"] = INJECTION_MATCHED
    return scenario


@pytest.fixture
def billing_database(tmp_path) -> Iterator[tuple[str, str | None]]:
    """(URI for the billing_sync_db connection, its password): PostgreSQL with a password role when
    TEST_DATABASE_URL reaches a server (REQUIRE_POSTGRES=1 makes that mandatory), else SQLite."""
    base = _postgres_base_url()
    if not (base and _postgres_available(base)):
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but PostgreSQL is not reachable through TEST_DATABASE_URL")
        yield f"sqlite:///{tmp_path / 'billing.db'}", None
        return
    with password_database(base) as (uri, password):
        yield uri, password


def test_no_secret_leaves_its_connection(
    sandbox_factory, dag_runner, billing_database, tmp_path, capfd, caplog
):
    tag = uuid.uuid4().hex[:12].upper()
    scenario = secret_scenario(tag)
    sb = sandbox_factory(scenario)
    db_uri, pg_password = billing_database
    h, c = scenario["huntress"], scenario["connectwise"]
    secrets = {
        "huntress api key": h["api_key"],
        "huntress api secret": h["api_secret"],
        "connectwise public key": c["public_key"],
        "connectwise private key": c["private_key"],
    }
    if pg_password:
        secrets["postgres password"] = pg_password
    wanted = needles(
        secrets, [(h["api_key"], h["api_secret"]), (f"{c['company_id']}+{c['public_key']}", c["private_key"])]
    )

    dr = dag_runner(sb, BILLING_DATE, db_url=db_uri)
    assert dr.state == "success", task_states(dr)
    output = capfd.readouterr()
    records = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)

    # Each place is also searched for a text known to be there, so an empty result means something.
    control = {"run id": dr.run_id}
    named = {"unmapped name": INJECTION_UNMAPPED}
    text = output.out + output.err
    assert found_in(text, wanted) == [] and found_in(text, control) == ["run id"]
    assert found_in(records, wanted) == []
    # dag.test() runs tasks in this process and their logs go to its output (searched above); the
    # per-task log files of a real executor are searched by test_executors.py.
    assert scan_files(Path(os.environ["AIRFLOW_HOME"]) / "logs", wanted) == {}
    reports = Path(os.environ["BILLING_SYNC_REPORTS_DIR"])
    assert any(reports.rglob("*.html")), "the run wrote its report"
    assert scan_files(reports, wanted) == {} and scan_files(reports, named)
    billing = sa.create_engine(db_uri.replace("postgresql://", "postgresql+psycopg2://", 1))
    assert scan_database(billing, wanted) == {} and scan_database(billing, named)
    from airflow import settings

    assert scan_database(settings.engine, wanted) == {}  # xcom, task_instance, dag_run, log, ...
    assert "xcom.run_id" in scan_database(settings.engine, control)

    assert_injection_names_round_trip(billing, dr.run_id)
    billing.dispose()


def assert_injection_names_round_trip(billing: sa.Engine, run_id: str) -> None:
    """Names shaped like SQL injection are stored and read back as plain text; no table was dropped."""
    tables = set(sa.inspect(billing).get_table_names())
    assert {"billing_runs", "billing_changes", "billing_quarantine", "billing_org_map"} <= tables
    with billing.connect() as conn:
        run = conn.execute(sa.text("select status from billing_runs where run_id = :r"), {"r": run_id}).one()
        names = {
            n
            for (n,) in conn.execute(
                sa.text(
                    "select huntress_organization_name from billing_quarantine where huntress_organization_id = :o"
                ),
                {"o": UNMAPPED_ORG},
            )
        }
        company = conn.execute(
            sa.text(
                "select company_name, outcome from billing_stg_outcomes where run_id = :r and company_id = :c"
            ),
            {"r": run_id, "c": MATCHED_COMPANY},
        ).all()
        ledger = conn.execute(
            sa.text("select count(*) from billing_changes where cw_company_id = :c"), {"c": MATCHED_COMPANY}
        ).scalar()
    assert run.status == "success"
    assert names == {INJECTION_UNMAPPED}
    assert company and {name for name, _ in company} == {INJECTION_MATCHED}
    assert ledger > 0, "the company with the injection-shaped name synced like any other"


def test_authentication_failure_is_clear_and_keeps_the_secret(
    sandbox_factory, dag_runner, monkeypatch, capfd
):
    tag = uuid.uuid4().hex[:12].upper()
    scenario = secret_scenario(tag)
    sb = sandbox_factory(scenario)
    wrong = f"cwWRONGKEY{tag}"
    before = cw_quantities(sb.connectwise_url)
    c = scenario["connectwise"]
    wanted = needles(
        {"wrong private key": wrong, "private key": c["private_key"]},
        [(f"{c['company_id']}+{c['public_key']}", wrong)],
    )

    dr = dag_runner(sb, BILLING_DATE, connectwise_secret=wrong)
    # Refused credentials are a permanent error: the task fails on its first try, no retries.
    assert dr.state == "failed" and task_states(dr)["extract_connectwise"] == ("failed", 1)
    output = capfd.readouterr()
    text = output.out + output.err
    assert "ConnectWise GET /company/companies was refused: HTTP 401" in text
    assert found_in(text, wanted) == []
    assert cw_quantities(sb.connectwise_url) == before

    # The same on Huntress, read where an operator reads it: the exception's message.
    for k, v in connection_env(
        scenario, sb.huntress_url, sb.connectwise_url, huntress_secret=f"hsWRONG{tag}"
    ).items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ApiError) as failed:
        HuntressClient.from_connection().invoices("reseller")
    assert str(failed.value).startswith("Huntress GET /v1/reseller/invoices was refused: HTTP 401")
    assert f"hsWRONG{tag}" not in str(failed.value) and scenario["huntress"]["api_key"] not in str(
        failed.value
    )


# -- SQL is parameterized -------------------------------------------------------------------------
SQL_CALLS = {"text", "execute", "exec_driver_sql", "executescript", "executemany", "copy_expert", "mogrify"}
# (file, function): why a built statement is safe there.
ALLOWED = {
    ("database.py", "_sqlite_on_connect"): "PRAGMA values are module constants, not data",
    (
        "staging.py",
        "_copy_rows",
    ): "COPY names only identifiers, quoted by the dialect; values travel as COPY data",
    (
        "schema.py",
        "_add_missing_columns",
    ): "ALTER TABLE names our own schema's tables and columns, quoted by the dialect",
}


def built_strings(tree: ast.AST) -> Iterator[tuple[str, ast.Call]]:
    """(enclosing function, call) for SQL-executing calls whose statement is built from pieces."""
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        built_names = {
            t.id
            for node in ast.walk(func)
            if isinstance(node, ast.Assign) and _is_built(node.value)
            for t in node.targets
            if isinstance(t, ast.Name)
        }
        for call in (n for n in ast.walk(func) if isinstance(n, ast.Call) and n.args):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            first = call.args[0]
            if name in SQL_CALLS and (
                _is_built(first) or (isinstance(first, ast.Name) and first.id in built_names)
            ):
                yield func.name, call


def _is_built(node: ast.AST) -> bool:
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"


def test_no_sql_statement_is_built_from_values():
    package = ROOT / "include" / "billing_sync"
    offenders, allowed_seen = [], set()
    for path in sorted(package.rglob("*.py")):
        for func, call in built_strings(ast.parse(path.read_text(), str(path))):
            if (path.name, func) in ALLOWED:
                allowed_seen.add((path.name, func))
            else:
                offenders.append(f"{path.relative_to(ROOT)}:{call.lineno} in {func}()")
    assert offenders == [], "SQL built from values; bind parameters instead"
    assert allowed_seen == set(ALLOWED), "a stale allow-list entry hides nothing and should go"
    assert not [p for p in package.rglob("*.py") if 'text(f"' in p.read_text() or "text(f'" in p.read_text()]


def test_ruff_finds_no_sql_built_from_strings():
    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run(
        [
            str(ruff),
            "check",
            "--select",
            "S608",
            "--output-format",
            "json",
            str(ROOT / "include"),
            str(ROOT / "dags"),
            str(ROOT / "plugins"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, json.loads(done.stdout or "[]") or done.stderr


def test_the_detector_catches_each_way_of_building_sql():
    """The scan above must not pass vacuously: every pattern it looks for is caught here."""
    sample = """
def f(conn, name, cursor):
    conn.execute(sa.text(f"select * from t where name = '{name}'"))
    conn.exec_driver_sql("delete from t where name = '%s'" % name)
    conn.execute("select * from t where name = '{}'".format(name))
    statement = "select * from t where name = '" + name + "'"
    cursor.execute(statement)
    conn.execute(sa.text("select * from t where name = :n"), {"n": name})
"""
    caught = sorted(call.lineno for _, call in built_strings(ast.parse(sample)))
    assert caught == [3, 4, 5, 7]
