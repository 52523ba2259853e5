"""Apply now and the work happening (issue 20 §1, §2), with FastAPI's TestClient and a stand-in for
Airflow's REST API (a real HTTP server on the loopback that keeps DAGs, runs and task instances):

- "Approve and apply now" records the approval and triggers the tenant's apply DAG as the user, with
  the conf naming exactly the approval's company and billing date;
- GET /runs/live says what the run is doing: queued (behind the paused DAG or the run holding the
  slot), running (the step), failed (the step, a reason, the log link), done (from billing_runs);
- a re-run that cannot start says so in the warning colour, with Unpause (PATCH as the user) and
  the blocking run;
- the Runs page lists the tenant's runs as Airflow has them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billing_sync import store
from billing_sync.names import APPLY_DAG_ID, DAG_ID
from billing_sync.review import airflow_runs
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth
from tests.helpers.airflow_api import TOKEN, Airflow
from tests.helpers.approvals_db import DAY, fill, seen_fields
from tests.helpers.review_roles import MAPPER, editor, mapper, reader


@dataclass
class Site:
    client: TestClient
    engine: Any
    rows: dict[str, int]

    def get(self, path: str, headers: dict[str, str] = TOKEN, **kw: Any) -> Any:
        return self.client.get(f"/billing-review{path}", headers=headers, **kw)

    def post(self, path: str, data: dict[str, str], headers: dict[str, str] = TOKEN) -> Any:
        html = self.get("/quarantine", headers).text
        token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)
        return self.client.post(
            f"/billing-review{path}",
            data={**data, "csrf_token": token},
            headers=headers,
            follow_redirects=False,
        )


@pytest.fixture
def site(tmp_path: Path, airflow: Airflow, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", "{}")
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    rows = fill(engine)
    sub = create_app(
        engine=engine, auth=ReviewAuth(reader=reader, editor=editor, mapper=mapper), csrf_secret=b"k"
    )
    sub.dependency_overrides[airflow_runs.api_base] = lambda: airflow.url
    root = FastAPI()
    root.mount("/billing-review", sub)
    with TestClient(root) as client:
        yield Site(client, engine, rows)
    engine.dispose()


def approve_and_apply(site: Site, headers: dict[str, str] = TOKEN) -> Any:
    row = site.rows["change_exceeds_limit"]
    form = {**seen_fields(site.client, row), "row_id": str(row), "rerun": "apply"}
    return site.post("/approvals", form, headers)


# --- Apply now ------------------------------------------------------------------------------------


def test_approve_and_apply_now_triggers_the_apply_dag_for_the_approvals_company_only(
    site: Site, airflow: Airflow
) -> None:
    form = site.get(f"/approvals/new?row={site.rows['change_exceeds_limit']}").text
    assert 'data-testid="approve-apply"' in form and "Approve and apply now" in form

    done = approve_and_apply(site)
    assert done.status_code == 303, done.text
    [approval] = store.list_approvals(site.engine, tenant="default")
    assert approval["status"] == "pending" and approval["cw_company_id"] == 251

    [post] = airflow.sent("POST")
    assert post["path"] == f"/api/v2/dags/{APPLY_DAG_ID}/dagRuns"
    assert post["authorization"] == "Bearer alices-airflow-token", "as the user, Airflow decides"
    assert post["json"]["conf"] == {"billing_date": DAY, "companies": [251], "organizations": []}
    run_id = post["json"]["dag_run_id"]
    assert re.fullmatch(rf"apply__{DAY}__\d{{8}}T\d{{6}}Z", run_id)
    assert f"approval #{approval['id']}" in post["json"]["note"]

    query = parse_qs(urlsplit(done.headers["location"]).query)
    assert (query["rerun"], query["run"]) == (["applying"], [run_id])
    page = site.client.get(done.headers["location"], headers=TOKEN)
    assert f"Apply now: run {run_id} of the apply DAG triggered for billing date {DAY}." in page.text
    # Without script: the run, linked in Airflow. With it: the live line and its nonce'd script.
    assert f'href="/dags/{APPLY_DAG_ID}/runs/{run_id}"' in page.text
    live = re.search(r'data-live="([^"]+)"', page.text).group(1).replace("&amp;", "&")
    assert parse_qs(urlsplit(live).query) == {"dag_id": [APPLY_DAG_ID], "run_id": [run_id]}
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    assert f'<script nonce="{nonce}" src="/billing-review/runs/live.js" defer>' in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    script = site.get("/runs/live.js")
    assert script.status_code == 200 and "data-live" in script.text


def test_a_created_addition_applied_now_syncs_its_company(site: Site, airflow: Airflow) -> None:
    row = site.rows["no_live_addition"]
    form = {**seen_fields(site.client, row), "row_id": str(row), "agreement_id": "1580", "rerun": "apply"}
    done = site.post("/approvals", form)
    assert done.status_code == 303, done.text
    [approval] = store.list_approvals(site.engine, tenant="default")
    assert (approval["kind"], approval["agreement_id"]) == ("create_addition", 1580)
    [post] = airflow.sent("POST")
    assert post["json"]["conf"] == {"billing_date": DAY, "companies": [252], "organizations": []}


def test_a_refused_apply_keeps_the_approval_and_says_so(site: Site, airflow: Airflow) -> None:
    airflow.status = 403
    done = approve_and_apply(site)
    assert len(store.list_approvals(site.engine, status="pending", tenant="default")) == 1
    page = site.client.get(done.headers["location"], headers=TOKEN).text
    assert "Airflow refused to apply it now" in page
    assert 'data-live="' not in page


# --- the run's state, live ------------------------------------------------------------------------


def live(site: Site, run_id: str, dag_id: str = APPLY_DAG_ID, headers: dict[str, str] = TOKEN) -> Any:
    return site.get("/runs/live", headers, params={"dag_id": dag_id, "run_id": run_id})


def test_live_follows_a_run_from_queued_to_done(site: Site, airflow: Airflow) -> None:
    approve_and_apply(site)
    [run_id] = airflow.runs[APPLY_DAG_ID]
    run = airflow.runs[APPLY_DAG_ID][run_id]

    queued = live(site, run_id).json()
    assert (queued["state"], queued["done"]) == ("queued", False)

    run["state"] = "running"
    airflow.tasks[run_id] = [
        {"task_id": "read_scope", "state": "success"},
        {"task_id": "push_changes", "state": "running"},
    ]
    running = live(site, run_id).json()
    assert (running["state"], running["step"]) == ("running", "push_changes")
    assert running["text"] == "Running: push_changes."

    run["state"] = "success"
    done = live(site, run_id).json()
    assert done["done"] and done["result"] is None, "no billing_runs row of that run yet"
    store.start_run(site.engine, run_id, DAY, 5001, "push", {}, tenant="default")
    store.finish_run(
        site.engine, run_id, "success", {"updated": 1, "unchanged": 3, "total": 4},
        {"money": {"recovered": 91.0}}, tenant="default",
    )  # fmt: skip
    result = live(site, run_id).json()["result"]
    assert (result["written"], result["counts"], result["recovered"]) == (
        1,
        {"updated": 1, "unchanged": 3},
        "+91.00",
    )
    assert result["held"] == 0


def test_live_names_the_failing_step_and_its_log(site: Site, airflow: Airflow) -> None:
    approve_and_apply(site)
    [run_id] = airflow.runs[APPLY_DAG_ID]
    airflow.runs[APPLY_DAG_ID][run_id]["state"] = "failed"
    airflow.tasks[run_id] = [
        {"task_id": "read_scope", "state": "success"},
        {"task_id": "push_changes", "state": "failed", "try_number": 3},
        {"task_id": "report", "state": "upstream_failed"},
    ]
    failed = live(site, run_id).json()
    assert (failed["state"], failed["step"], failed["done"]) == ("failed", "push_changes", True)
    assert failed["text"] == "Failed at push_changes: the step failed after 3 tries: its log says why."
    assert failed["log_url"] == f"/dags/{APPLY_DAG_ID}/runs/{run_id}/tasks/push_changes"


def test_live_says_what_a_queued_run_waits_behind(site: Site, airflow: Airflow) -> None:
    held = "scheduled__2026-12-01T00:00:00+00:00"
    airflow.runs[DAG_ID] = {held: {"dag_run_id": held, "state": "running"}}
    airflow.tasks[held] = [{"task_id": "wait_for_invoice", "state": "up_for_reschedule"}]
    mine = "desk__2026-11-01__20261207T180000Z"
    airflow.runs[DAG_ID][mine] = {"dag_run_id": mine, "state": "queued"}
    behind = live(site, mine, DAG_ID).json()
    assert behind["behind"]["run_id"] == held and behind["behind"]["waiting"] == "wait_for_invoice"
    assert f"Queued behind run {held} (running, waiting at wait_for_invoice)" in behind["text"]

    airflow.paused[DAG_ID] = True
    paused = live(site, mine, DAG_ID).json()
    assert "is paused" in paused["text"] and paused["unpause"]["url"] == "/billing-review/unpause"


def test_live_answers_only_for_the_tenants_dags_and_with_a_login(site: Site, airflow: Airflow) -> None:
    airflow.runs["someone_elses_dag"] = {"r": {"dag_run_id": "r", "state": "running"}}
    assert live(site, "r", "someone_elses_dag").status_code == 404
    assert airflow.requests == [], "nothing asked of Airflow for another DAG"
    assert live(site, "r", DAG_ID, MAPPER).status_code == 401
    assert live(site, "nope", DAG_ID).status_code == 404


# --- a re-run that cannot start ---------------------------------------------------------------------


def test_a_rerun_behind_a_waiting_run_warns_and_links_it(site: Site, airflow: Airflow) -> None:
    held = "scheduled__2026-12-01T00:00:00+00:00"
    airflow.runs[DAG_ID] = {held: {"dag_run_id": held, "state": "running"}}
    done = site.post("/rerun", {"billing_date": DAY, "back": "status=open"})
    assert parse_qs(urlsplit(done.headers["location"]).query)["behind"] == [held]
    page = site.client.get(done.headers["location"], headers=TOKEN).text
    assert f"run {held} holds the DAG&#39;s only slot" in page
    assert 'class="flash warn"' in page and 'class="flash ok"' not in page
    assert 'data-testid="blocking-run"' in page


def test_unpause_patches_the_dag_as_the_user(site: Site, airflow: Airflow) -> None:
    airflow.paused[DAG_ID] = True
    done = site.post("/rerun", {"billing_date": DAY, "back": "status=open"})
    page = site.client.get(done.headers["location"], headers=TOKEN).text
    assert 'data-testid="unpause"' in page
    unpaused = site.post("/unpause", {"billing_date": DAY, "back": "status=open"})
    assert unpaused.status_code == 303
    [patch] = airflow.sent("PATCH")
    assert (patch["path"], patch["json"]) == (f"/api/v2/dags/{DAG_ID}", {"is_paused": False})
    assert patch["authorization"] == "Bearer alices-airflow-token"
    assert airflow.paused[DAG_ID] is False
    assert "The DAG was unpaused" in site.client.get(unpaused.headers["location"], headers=TOKEN).text
    airflow.status = 403
    assert site.post("/unpause", {"billing_date": DAY, "back": "status=open"}).status_code == 403


# --- the Runs page, as Airflow has them -------------------------------------------------------------


def test_the_runs_page_lists_every_run_of_both_dags_as_airflow_has_them(site: Site, airflow: Airflow) -> None:
    scheduled, desk = "scheduled__2026-12-01T00:00:00+00:00", "desk__2026-12-01__20261207T120000Z"
    # The record still says running (the task was killed); Airflow marked the run failed.
    store.start_run(site.engine, scheduled, "2026-12-01", None, "push", {}, tenant="default")
    airflow.runs[DAG_ID] = {
        scheduled: {"dag_run_id": scheduled, "state": "failed", "start_date": "2026-12-01T00:00:05Z"},
        desk: {"dag_run_id": desk, "state": "failed", "start_date": "2026-12-07T12:00:01Z"},
    }
    apply = f"apply__{DAY}__20261207T130000Z"
    airflow.runs[APPLY_DAG_ID] = {
        apply: {"dag_run_id": apply, "state": "running", "start_date": "2026-12-07T13:00:01Z"}
    }

    html = site.get("/runs").text
    table = re.search(r'<table data-testid="airflow-runs">(.*?)</table>', html, re.S).group(1)
    rows = dict(
        re.findall(r'<tr data-run="([^"]+)">.*?<td class="status-[a-z_]+">([a-z_]+)</td>', table, re.S)
    )
    assert rows == {scheduled: "failed", desk: "failed", apply: "running"}, "failed and running ones included"
    assert list(rows) == [apply, desk, scheduled], "newest first"
    records = re.search(r'<table data-testid="runs">(.*?)</table>', html, re.S).group(1)
    row = re.search(rf"<tr>\s*<td><a [^>]*>{re.escape(scheduled)}</a>.*?</tr>", records, re.S).group(0)
    assert "failed" in row and "(Airflow; recorded: running)" in row, "never shown as running"
    asked = {r["path"] for r in airflow.sent("GET")}
    assert asked == {f"/api/v2/dags/{DAG_ID}/dagRuns", f"/api/v2/dags/{APPLY_DAG_ID}/dagRuns"}
    assert {r["authorization"] for r in airflow.sent("GET")} == {"Bearer alices-airflow-token"}

    without_login = site.get("/runs", MAPPER).text
    assert "Sign in to Airflow to see its runs here." in without_login


# --- Apply now beside the other decisions -------------------------------------------------------------


def stage_organization(site: Site) -> None:
    """The run staged organization 9 (its unmapped row): the mapping page's newest staging."""
    from billing_sync import frames

    run = store.list_runs(site.engine, limit=1, tenant="default")[0]["run_id"]
    orgs = frames.organizations_frame([{"id": 9, "name": "Delta Dental", "key": "delta"}])
    store.write_frame(site.engine, run, "organizations", orgs, tenant="default")


def applied_conf(airflow: Airflow) -> dict[str, Any]:
    [post] = airflow.sent("POST")
    assert post["path"] == f"/api/v2/dags/{APPLY_DAG_ID}/dagRuns"
    assert post["authorization"] == "Bearer alices-airflow-token"
    return post["json"]["conf"]


def test_a_mapping_applied_now_syncs_the_organization_and_its_company(site: Site, airflow: Airflow) -> None:
    stage_organization(site)
    assert 'name="apply" value="1"' in site.get("/mapping").text
    plain = site.post("/mapping", {"organization_id": "9", "company_id": "252"})
    assert plain.status_code == 303 and airflow.sent("POST") == [], "no Apply now unless asked"
    done = site.post("/mapping", {"organization_id": "9", "company_id": "251", "apply": "1"})
    assert applied_conf(airflow) == {"billing_date": DAY, "companies": [251], "organizations": [9]}
    assert "rerun=applying" in done.headers["location"]
    page = site.client.get(done.headers["location"], headers=TOKEN).text
    assert "Organization 9 mapped" in page and 'data-live="' in page


def test_an_override_applied_now_syncs_its_company(site: Site, airflow: Airflow) -> None:
    stage_organization(site)
    assert 'data-testid="override-apply"' in site.get("/overrides").text
    form = {"company_id": "251", "product": "edr", "rule": "minimum", "quantity": "45", "apply": "1"}
    done = site.post("/overrides", form)
    assert store.list_overrides(site.engine, tenant="default", active=True)[0]["quantity"] == 45
    assert applied_conf(airflow) == {"billing_date": DAY, "companies": [251], "organizations": []}
    page = site.client.get(done.headers["location"], headers=TOKEN)
    assert "Apply now: run apply__" in page.text and 'data-live="' in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]


def test_a_row_resolved_and_applied_now_syncs_its_organization(site: Site, airflow: Airflow) -> None:
    row = site.rows["unmapped_organization"]
    assert f'data-testid="resolve-apply-{row}"' in site.get("/quarantine").text
    done = site.post(f"/quarantine/{row}", {"action": "resolve_apply", "back": "status=open"})
    assert store.get_quarantine(site.engine, row, tenant="default")["status"] == "resolved"
    assert applied_conf(airflow) == {"billing_date": DAY, "companies": [], "organizations": [9]}
    assert "rerun=applying" in done.headers["location"]
    assert (
        site.post(f"/quarantine/{row}", {"action": "reopen_apply", "back": "status=open"}).status_code == 400
    )
    airflow.status = 403
    held = site.rows["change_exceeds_limit"]
    refused = site.post(f"/quarantine/{held}", {"action": "resolve_apply", "back": "status=all"})
    assert store.get_quarantine(site.engine, held, tenant="default")["status"] == "resolved", (
        "the decision stands"
    )
    assert (
        "Airflow refused to apply it now" in site.client.get(refused.headers["location"], headers=TOKEN).text
    )
