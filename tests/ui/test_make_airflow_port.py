"""Issue 20 §4: `make airflow` on a port other than 8080 completes a run triggered from the pages.

The real script (scripts/airflow_local.py, as the Makefile runs it, with `--port` a free port) in a
fresh AIRFLOW_HOME: its sandbox, its seed run, `airflow standalone` with LocalExecutor. Each task then
runs in a process of its own that reports to Airflow's Execution API; seen on `--port 8093`: those
processes called :8080, the run retried for 9 minutes and failed with empty task logs.

Setup, not under test: the DAG is unpaused through the REST API (unpausing from the pages is another
part of issue 20), and `[scheduler] use_job_schedule` is off, so unpausing adds no scheduled run of
today's billing day (it would wait days for its invoice and hold `max_active_runs=1`). Then `admin`
signs in on the given port, clicks *Re-run billing date*, and the DAG run must reach success in
Airflow, its billing_runs row success, its report linking to the given port.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from billing_sync import store
from tests.conftest import DEMO_SCENARIO, ROOT
from tests.ui.conftest import DAG_ID, Site, free_port, login, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.browser]

START_TIMEOUT_S = 240  # seed run + standalone's four components on a loaded 2-core machine
# The run takes well under a minute here; with the tasks calling the wrong port they retry (2 × 2 min)
# and never succeed: the bound keeps that failure to a few minutes.
RUN_TIMEOUT_S = 150
STOP_TIMEOUT_S = 90  # the script's own stop: SIGTERM to each component, 30 s grace, SIGKILL
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def script_env(home: Path) -> dict[str, str]:
    """What `make airflow` gives the script (the Makefile's exports), in a home of this test's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        # nothing of the test process's own Airflow or billing settings
        if not k.startswith(("AIRFLOW_VAR_", "AIRFLOW_CONN_", "BILLING_SYNC_", "BILLING_REVIEW_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "GX_ANALYTICS_ENABLED": "false",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",  # see the module's docstring
        }
    )
    return env


def stop_script(proc: subprocess.Popen) -> None:
    """SIGTERM, as `kill` would: the script stops its tree; whatever outlives a bounded wait is killed."""
    tree = [proc.pid]
    with contextlib.suppress(psutil.Error):
        tree += [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    for pid in tree:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@pytest.fixture
def local_airflow(tmp_path: Path) -> Iterator[Site]:
    home = tmp_path / "airflow_home"
    home.mkdir()
    env = script_env(home)
    airflow = Path(sys.executable).with_name("airflow")
    migrated = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]

    port = free_port()
    assert port != 8080
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-airflow.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "airflow_local.py"), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    engine = None
    try:
        passwords = _wait_ready(proc, url, home / PASSWORDS_FILE, log)
        engine = store.make_engine(f"sqlite:///{home / 'billing_sync.db'}")
        yield Site(url, passwords, engine, proc, log, {})
    finally:
        stop_script(proc)
        if engine is not None:
            engine.dispose()


def _wait_ready(proc: subprocess.Popen, url: str, password_file: Path, log: Path) -> dict[str, str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make airflow exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return json.loads(password_file.read_text())
        time.sleep(1)
    pytest.fail(f"make airflow did not answer on {url} in {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def _api(site: Site) -> httpx.Client:
    return httpx.Client(
        base_url=f"{site.url}/api/v2", headers={"Authorization": f"Bearer {site.token('admin')}"}, timeout=30
    )


def _unpause(api: httpx.Client) -> None:
    """PATCH is_paused=false once the DAG processor has put the DAG in the database (404 until then)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        answer = api.patch(f"/dags/{DAG_ID}", json={"is_paused": False})
        # A run can be triggered once the DAG's serialized form is in the database too (`details`
        # reads it): on a loaded machine the DagModel row can come first (seen: a 404 to the trigger).
        if answer.status_code == 200 and api.get(f"/dags/{DAG_ID}/details").status_code == 200:
            assert answer.json()["is_paused"] is False
            return
        assert answer.status_code in (200, 404) and time.monotonic() < deadline, answer.text
        time.sleep(2)


def _dag_runs(api: httpx.Client) -> dict[str, dict[str, Any]]:
    listed = api.get(f"/dags/{DAG_ID}/dagRuns", params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return {r["dag_run_id"]: r for r in listed.json()["dag_runs"]}


def _wait_finished(api: httpx.Client, run_id: str, log: Path) -> str:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    state = None
    while time.monotonic() < deadline:
        answer = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}")
        assert answer.status_code == 200, answer.text
        state = answer.json()["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    tasks = api.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances").json().get("task_instances", [])
    states = {t["task_id"]: (t["state"], t["try_number"]) for t in tasks}
    pytest.fail(
        f"the run is still {state} after {RUN_TIMEOUT_S}s; tasks (state, try): {states}\n"
        f"{log.read_text()[-3000:]}"
    )


def test_make_airflow_on_another_port_completes_a_rerun_from_the_pages(browser, local_airflow: Site) -> None:
    from playwright.sync_api import expect

    site = local_airflow
    scenario = json.loads(DEMO_SCENARIO.read_text())
    day = scenario.get("meta", {}).get("billing_date", "2026-11-01")  # what the script seeds
    with _api(site) as api:
        _unpause(api)
        before = set(_dag_runs(api))
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        context.set_default_timeout(30_000)
        page = context.new_page()
        try:
            login(page, site, "admin", site.page("/quarantine"))
            page.get_by_test_id("rerun-bar").get_by_role("button", name=f"Re-run billing date {day}").click()
            expect(page.get_by_test_id("rerun-notice")).to_contain_text(f"triggered for billing date {day}")
            screenshot(page, "make-airflow-port-rerun")
        finally:
            context.close()
        [run_id] = set(_dag_runs(api)) - before
        assert run_id.startswith(f"desk__{day}__"), run_id
        assert _wait_finished(api, run_id, site.log) == "success"

    row = store.get_run(site.engine, run_id, tenant="default")
    assert row is not None, f"no billing_runs row for {run_id}"
    assert row["status"] == "success", row
    # The links the task wrote name the port everything was started on (`[api] base_url`).
    reports = "".join(p.read_text() for p in Path(row["report_path"]).glob("*.html"))
    assert f"http://127.0.0.1:{site.url.rsplit(':', 1)[1]}/dags/{DAG_ID}/runs/" in reports
    assert ":8080" not in reports
