"""A DAG per tenant from the tenants file, parsed as the DAG processor parses it (docs/contract.md §1).

The DagBag here is Airflow's own; the tenants file is a real file named by BILLING_SYNC_TENANTS_FILE.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

DAG_ID = "huntress_connectwise_billing_sync"
APPLY = "huntress_connectwise_billing_apply"  # docs/contract.md §1 Apply DAG: one beside each
CHECK_FILE = "billing_sync_tenants_check.py"


def entry(tenant_id: str, day: int, huntress: str | None = None) -> dict[str, object]:
    return {
        "id": tenant_id,
        "huntress_conn_id": huntress or f"huntress_{tenant_id}",
        "connectwise_conn_id": f"connectwise_{tenant_id}",
        "variable": f"huntress_cw_billing_config_{tenant_id}",
        "billing_day": day,
    }


def dagbag(monkeypatch: pytest.MonkeyPatch, path: Path | None):
    from airflow.dag_processing.dagbag import DagBag

    if path is None:
        monkeypatch.delenv("BILLING_SYNC_TENANTS_FILE", raising=False)
    else:
        monkeypatch.setenv("BILLING_SYNC_TENANTS_FILE", str(path))
    return DagBag(dag_folder=str(ROOT / "dags"))


def write(tmp_path: Path, entries: list[object]) -> Path:
    path = tmp_path / "tenants.json"
    path.write_text(json.dumps({"tenants": entries}, indent=2), encoding="utf-8")
    return path


def test_each_tenant_gets_its_dag_with_its_day_connections_and_pool(tmp_path, monkeypatch) -> None:
    north, south = entry("north", 1), entry("south", 15, huntress="huntress_north")
    bag = dagbag(monkeypatch, write(tmp_path, [north, south]))
    assert bag.import_errors == {}
    # no single-tenant DAG beside them; each tenant's apply DAG beside its monthly one
    assert set(bag.dags) == {f"{d}__{t}" for d in (DAG_ID, APPLY) for t in ("north", "south")}
    n, s = bag.dags[f"{DAG_ID}__north"], bag.dags[f"{DAG_ID}__south"]
    assert (n.timetable.expression, s.timetable.expression) == ("0 0 1 * *", "0 0 15 * *")
    # The tasks that call Huntress share their account's pool: south bills from north's account.
    for dag in (n, s):
        pools = {t.task_id: t.pool for t in dag.tasks}
        assert pools["wait_for_invoice"] == pools["extract_huntress"] == "huntress__huntress_north"
        assert pools["extract_connectwise"] == pools["push"] == "default_pool"
    assert {t.task_id for t in n.tasks} == {t.task_id for t in s.tasks}
    # The apply never queues behind a monthly run's Huntress extraction in the account's pool.
    assert {t.pool for t in bag.dags[f"{APPLY}__south"].tasks} == {"default_pool"}


def test_without_the_file_the_single_tenant_dag_is_unchanged(monkeypatch) -> None:
    bag = dagbag(monkeypatch, None)
    assert bag.import_errors == {}
    assert set(bag.dags) == {DAG_ID, APPLY}
    assert {t.pool for t in bag.dags[DAG_ID].tasks} == {"default_pool"}


def test_a_broken_entry_is_an_import_error_naming_its_line_and_the_others_run(tmp_path, monkeypatch) -> None:
    path = write(tmp_path, [entry("north", 1), {**entry("south", 2), "colour": "red"}, entry("east", 3)])
    bag = dagbag(monkeypatch, path)
    assert set(bag.dags) == {f"{d}__{t}" for d in (DAG_ID, APPLY) for t in ("north", "east")}
    [(file, error)] = bag.import_errors.items()
    assert Path(file).name == CHECK_FILE
    assert f"{path}, line 10: tenant #2: unknown key(s) 'colour'" in error


def test_a_file_broken_as_a_whole_is_one_import_error_with_its_line(tmp_path, monkeypatch) -> None:
    path = tmp_path / "tenants.json"
    path.write_text('{"tenants": [\n  {"id": "north"\n]}', encoding="utf-8")
    bag = dagbag(monkeypatch, path)
    assert bag.dags == {}
    [(file, error)] = bag.import_errors.items()
    assert Path(file).name == f"{DAG_ID}.py"
    assert f"{path}, line 3: not JSON" in error


PROBE = """
import importlib.util, sys
import airflow.sdk

asked = []

def refuse(*args, **kwargs):
    asked.append(args)
    raise RuntimeError("the parse asked for a Variable")

airflow.sdk.Variable.get = refuse
spec = importlib.util.spec_from_file_location("parsed", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print(f"asked {len(asked)}")
"""


# A fresh interpreter importing Airflow, as the DAG processor parses: seconds of a CPU each, so
# `make test` runs it, the fast loop does not.
@pytest.mark.integration
@pytest.mark.parametrize(("tenants_file", "asked"), [(True, 0), (False, 1)])
def test_the_tenants_file_is_read_at_parse_without_any_lookup(tmp_path, tenants_file, asked) -> None:
    """No Variable (so no metadata-database query) where the DAG processor would ask one: the file
    carries each tenant's billing day. The single-tenant form does ask, once (the probe's control)."""
    env = {k: v for k, v in os.environ.items() if k != "BILLING_SYNC_TENANTS_FILE"}
    # With a secrets backend the single-tenant form reads billing_day through Variable.get.
    env["AIRFLOW__SECRETS__BACKEND"] = "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    if tenants_file:
        env["BILLING_SYNC_TENANTS_FILE"] = str(write(tmp_path, [entry("north", 1), entry("south", 15)]))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "dags" / f"{DAG_ID}.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == f"asked {asked}"
