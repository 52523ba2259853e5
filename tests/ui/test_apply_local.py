"""Issue 20 §1 on `make airflow` (LocalExecutor, this machine): an approval applied through the apply
DAG is written within 30 s of the trigger, while the monthly DAG stays paused (Airflow's default).

The real script in a fresh AIRFLOW_HOME (tests/ui/conftest.py's `local_airflow`): its
sandbox, its seed run of the demo scenario's billing date. Then a person's approval of a change the
guard held (Sunrise-style 8 → 22, the demo's `jump_up`), recorded in the billing database as the
desk records it, and the trigger of `huntress_connectwise_billing_apply` through Airflow's REST API
with the decision's conf, as the desk's Apply now sends it. The clock runs from the trigger's answer
to the ledger row of the write.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from billing_sync import store
from tests.conftest import DEMO_SCENARIO
from tests.helpers.local_airflow import START_TIMEOUT_S
from tests.helpers.local_airflow import api as _api
from tests.ui.conftest import DAG_ID, Site

pytestmark = [pytest.mark.integration]

APPLY_DAG_ID = "huntress_connectwise_billing_apply"
TARGET_S = 30.0  # issue 20 §1: from the click to the addition written


def _jump_up(site: Site, day: str) -> dict[str, Any]:
    """The seed run's held change of the demo's `jump_up` (company 369, edr: 8 → 22), as outcomes hold it."""
    (run,) = store.list_runs(site.engine, tenant="default", limit=1)
    outcomes = store.read_frame(site.engine, run["run_id"], "outcomes", tenant="default")
    held = outcomes[(outcomes["company_id"] == 369) & (outcomes["product"] == "edr")]
    (key,) = held.to_dict("records")
    assert key["reason_code"] == "change_exceeds_limit", key
    return key


def _wait_registered(api: httpx.Client) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        answer = api.get(f"/dags/{APPLY_DAG_ID}")
        if answer.status_code == 200:
            return answer.json()
        assert answer.status_code == 404 and time.monotonic() < deadline, answer.text
        time.sleep(2)


def test_apply_now_writes_an_approval_within_30_s_on_local_executor(local_airflow: Site) -> None:
    site = local_airflow
    day = json.loads(DEMO_SCENARIO.read_text())["meta"]["billing_date"]
    key = _jump_up(site, day)
    approval = store.add_approval(
        site.engine, billing_date=day, sync_key=key["sync_key"], cw_company_id=369, product="edr",
        kind="change", addition_id=int(key["addition_id"]), agreement_id=int(key["agreement_id"]),
        from_quantity=key["previous_quantity"], to_quantity=int(key["target"]),
        user="Alice Example", user_id="alice", tenant="default",
    )  # fmt: skip
    with _api(site) as api:
        registered = _wait_registered(api)
        assert registered["is_paused"] is False, "the apply DAG is active when deployed"
        monthly = api.get(f"/dags/{DAG_ID}").json()
        assert monthly["is_paused"] is True, "the monthly DAG stays paused: the apply needs nothing of it"
        conf = {"billing_date": day, "companies": [369], "organizations": []}
        answer = api.post(f"/dags/{APPLY_DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf})
        assert answer.status_code == 200, answer.text
        clicked = time.monotonic()
        run_id = answer.json()["dag_run_id"]
        written = None
        while time.monotonic() - clicked < 120:
            rows = store.changes_for_run(site.engine, run_id, tenant="default")
            if any(r["action"] == "updated" for r in rows):
                written = time.monotonic() - clicked
                break
            time.sleep(0.25)
        state = api.get(f"/dags/{APPLY_DAG_ID}/dagRuns/{run_id}").json()["state"]
    print(f"Apply now on LocalExecutor: trigger → addition written in {written} s (run {state})")
    assert written is not None, f"nothing written in 120 s; run {state}\n{site.log.read_text()[-3000:]}"
    (row,) = [
        r for r in store.changes_for_run(site.engine, run_id, tenant="default") if r["action"] == "updated"
    ]
    assert row["approval_id"] == approval["id"] and row["monthly_amount_delta"] is not None
    assert written <= TARGET_S, f"trigger → written took {written:.1f} s"
