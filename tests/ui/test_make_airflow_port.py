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

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_sync import store
from tests.conftest import DEMO_SCENARIO
from tests.helpers.local_airflow import START_TIMEOUT_S
from tests.helpers.local_airflow import api as _api
from tests.ui.conftest import DAG_ID, Site, login, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.browser]

# The run takes well under a minute here; with the tasks calling the wrong port they retry (2 × 2 min)
# and never succeed: the bound keeps that failure to a few minutes.
RUN_TIMEOUT_S = 150


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
