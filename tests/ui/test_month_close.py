"""Issue 11 §8: a full month closed at the billing desk, in Chromium, as real Airflow users.

The demo scenario (`scenarios/demo.json`, every planted problem) runs once for its billing date; then
`operator` (SimpleAuthManager OP: may map, override and approve) works the quarantine the way a
billing person would, through the pages only, until no row of the billing date is open:

- round 1: map the ambiguous organization (its candidate button) and the misnamed one (the type-ahead
  picker), approve the three held changes with a note, create the missing additions that have a live
  agreement (picking it), set a contract minimum, a fixed quantity and an exclusion where those are the
  fix, dismiss with a note what is not to be billed from the desk (a new customer without a company,
  a deleted company, an addition that starts next month, duplicates and missing-from-invoice rows that
  need ConnectWise, bad counts that need Huntress); then *Re-run billing date*;
- round 2: the mapped company has no Huntress additions yet, so its four keys come back as
  `no_live_addition`: create them (the last with *Approve and re-run*);
- round 3: one more *Re-run billing date* (from the mapping page): nothing left, nothing written again.

ConnectWise (the sandbox's `/_sandbox/state`) must then hold exactly what the decisions imply, computed
here from the scenario's invoice and ConnectWise's state after the first run (an oracle of its own, not
the billing database): the approved quantities, the overrides' quantities, the created additions, every
other addition as it was, each write made once. The ledger names the approvals and overrides; every
decision records the user's name and id and a time; Airflow records `operator` as who triggered each run.

Then `watcher` (VIEWER) sees every page of the desk and can do none of it: a POST with its own valid
form token to every action route is refused and changes nothing.

How a re-run is executed. The fixture runs no scheduler. The desk triggers each run through Airflow's
REST API as the user (a queued DAG run `desk__<date>__<time>`, triggered by `operator`); the test then
executes that very DAG run in this process with `dag.test()`, whose run loop and in-process task runner
are Airflow's own, only told to adopt the queued run (`_run_desk_run`: it moves it to running, as the
scheduler does, instead of replacing it with a run of its own). So the billing run id, the trigger's
user and note stay the desk's. A real scheduler would cost a LocalExecutor process per task and, when
the DAG is unpaused on today's clock, a scheduled run of the latest billing day (no invoice in the demo)
that holds `max_active_runs=1`; tests/e2e/test_backfill.py covers the scheduler path.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from billing_sync import store
from tests.conftest import DEMO_SCENARIO, ROOT, Sandbox, migrate_airflow_db, start_sandbox
from tests.helpers.demo_month import (
    APPROVE,
    CANDIDATE_MAP,
    CREATE,
    CREATE_AFTER_MAPPING,
    DISMISS,
    FIRST_RUN_KEYS,
    OVERRIDES,
    PICKER_MAP,
    RESOLVED_BY_MAPPING,
    connectwise_state,
    invoice_usage,
    live_addition,
    row_key,
)
from tests.ui.conftest import (
    BILLING_DATE,
    DAG_ID,
    Site,
    _wait_healthy,
    billing_env,
    launch_api_server,
    login,
    run_billing_dag,
    screenshot,
    stop,
)

pytestmark = pytest.mark.browser

OPERATOR, VIEWER = "operator", "watcher"
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


@dataclass
class Desk:
    site: Site
    sandbox: Sandbox
    env: dict[str, str]
    first_run: str  # the billing run id of the first (scheduled-like) run
    connectwise_before: dict[str, Any]  # /_sandbox/state after the first run
    desk_runs: list[str] = field(default_factory=list)  # DAG runs the desk triggered, in order


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """The demo's sandbox (kept up for the re-runs) → the first DAG run → the real API server."""
    assert json.loads(DEMO_SCENARIO.read_text())["meta"]["billing_date"] == BILLING_DATE
    tmp = tmp_path_factory.mktemp("month-close")
    env = billing_env(tmp)
    migrate_airflow_db()
    sb = start_sandbox(DEMO_SCENARIO, tmp)
    try:
        proc, url, passwords, log, keys = launch_api_server(tmp, env)  # starts while the DAG runs
        engine = store.make_engine(f"sqlite:///{tmp / 'billing.db'}")
        try:
            run_billing_dag(sb, env)
            _wait_healthy(proc, url, log)
            site = Site(url, passwords, engine, proc, log, keys)
            [first] = store.list_runs(engine, limit=None, tenant="default")
            yield Desk(site, sb, env, first["run_id"], connectwise_state(sb))
        finally:
            stop(proc)
            engine.dispose()
    finally:
        sb.stop()


# --- helpers -----------------------------------------------------------------------------------------


def _open_rows(desk: Desk) -> dict[tuple[str, Any, str | None], dict[str, Any]]:
    rows = store.list_quarantine(
        desk.site.engine, status="open", billing_date=BILLING_DATE, limit=None, tenant="default"
    )
    keyed = {row_key(r): r for r in rows}
    assert len(keyed) == len(rows), "two open rows of one key and reason"
    return keyed


def _quarantine_url(desk: Desk, **query: str) -> str:
    q = "&".join(f"{k}={quote(v)}" for k, v in {"billing_date": BILLING_DATE, **query}.items())
    return desk.site.page(f"/quarantine?{q}")


def _airflow_run(desk: Desk, run_id: str) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {desk.site.token('reviewer')}"}
    got = httpx.get(
        f"{desk.site.url}/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}", headers=admin, timeout=30
    )
    assert got.status_code == 200, got.text
    return got.json()


def _airflow_runs(desk: Desk) -> list[dict[str, Any]]:
    admin = {"Authorization": f"Bearer {desk.site.token('reviewer')}"}
    got = httpx.get(f"{desk.site.url}/api/v2/dags/{DAG_ID}/dagRuns", headers=admin, timeout=30)
    assert got.status_code == 200, got.text
    return got.json()["dag_runs"]


def _run_desk_run(desk: Desk, run_id: str) -> None:
    """Execute the DAG run the desk triggered (queued, the DAG paused, no scheduler here), in this
    process: `dag.test()`'s own loop and task runner, told to adopt that run instead of replacing it
    (it deletes any run of the logical date and creates `manual__…` triggered by "dag_test")."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import dagrun as dagrun_module
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    queued = _airflow_run(desk, run_id)
    assert queued["state"] == "queued", queued
    assert queued["triggering_user_name"] == OPERATOR, "Airflow recorded who triggered it"
    assert queued["note"] == f"Billing review: re-run of billing date {BILLING_DATE}"

    def adopt(*, dag: Any, session: Any, **_: Any) -> DagRun:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
        assert run is not None and run.state == DagRunState.QUEUED, run
        run.dag = dag  # as the scheduler does: the serialized DAG the run's loop schedules from
        run.set_state(DagRunState.RUNNING)  # and what it does to a queued run it starts
        session.commit()
        return run

    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**desk.env, **desk.sandbox.connections()}.items():
            mp.setenv(key, value)
        mp.setattr(dagrun_module, "get_or_create_dagrun", adopt)
        dag = DagBag(dag_folder=str(ROOT / "dags")).dags[DAG_ID]
        done = dag.test(logical_date=datetime.fromisoformat(queued["logical_date"].replace("Z", "+00:00")))
    assert done.run_id == run_id
    assert str(done.state).endswith("success"), f"the desk's run ended {done.state}"
    billing = store.get_run(desk.site.engine, run_id, tenant="default")
    assert billing is not None and billing["status"] == "success" and billing["mode"] == "push", billing
    desk.desk_runs.append(run_id)


def _triggered_run(page: Any) -> str:
    from playwright.sync_api import expect

    notice = page.get_by_test_id("rerun-notice")
    expect(notice).to_contain_text(f"triggered for billing date {BILLING_DATE}")
    run_id = notice.get_by_role("link", name="Open the DAG run").get_attribute("href").rsplit("/", 1)[1]
    assert re.fullmatch(rf"desk__{BILLING_DATE}__\d{{8}}T\d{{6}}Z", run_id), run_id
    return run_id


def _rerun_from_quarantine(page: Any, desk: Desk) -> str:
    page.goto(_quarantine_url(desk))
    bar = page.get_by_test_id("rerun-bar")
    bar.get_by_role("button", name=f"Re-run billing date {BILLING_DATE}").click()
    return _triggered_run(page)


# --- the operator's actions, through the pages ----------------------------------------------------------


def _map_by_candidate(page: Any, desk: Desk) -> None:
    from playwright.sync_api import expect

    org, company, name = CANDIDATE_MAP
    page.goto(_quarantine_url(desk, reason_code="ambiguous_company_match"))
    head = page.locator(f"#group-organization-{org}")
    expect(head.get_by_test_id(f"candidates-{org}")).to_contain_text(name)
    screenshot(page, "month-close-ambiguous")
    head.get_by_role("button", name=f"Map to this company: {name} #{company}", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text(f"Organization {org} mapped: ")
    expect(page.get_by_role("status")).to_contain_text(f"→ {name} (company #{company})")
    expect(page.get_by_test_id(f"now-matched-{org}")).to_contain_text(f"#{company}")


def _map_by_picker(page: Any, desk: Desk) -> None:
    from playwright.sync_api import expect

    org, company, name, typed = PICKER_MAP
    page.goto(_quarantine_url(desk, reason_code="unmapped_organization"))
    head = page.locator(f"#group-organization-{org}")
    search = head.get_by_label(f"Find a company for organization {org}")
    expect(search).to_have_attribute("data-picker-ready", "")
    search.press_sequentially(typed, delay=30)
    choice = head.get_by_role("button", name=f"Map to this company: {name} #{company}", exact=True)
    expect(choice).to_be_visible()
    choice.click()
    expect(page.get_by_role("status")).to_contain_text(f"Organization {org} mapped: ")
    expect(page.get_by_role("status")).to_contain_text(f"→ {name} (company #{company})")
    expect(page.get_by_test_id(f"now-matched-{org}")).to_contain_text(f"#{company}")


def _dismiss(page: Any, desk: Desk, rows: dict, notes: dict) -> None:
    from playwright.sync_api import expect

    page.goto(_quarantine_url(desk))
    for key, note in notes.items():
        row_id = rows[key]["id"]
        line = page.locator(f"#row-{row_id}")
        line.get_by_label(f"Note for row {row_id}").fill(note)
        line.get_by_role("button", name="Dismiss").click()
        expect(page.get_by_role("status")).to_contain_text(f"Row {row_id} dismissed: ")
        expect(page.locator(f"#row-{row_id}")).to_have_count(0)


def _approve_change(page: Any, desk: Desk, row: dict, note: str, usage: int, before: float) -> int:
    """From the row's "Approve…" link in the quarantine: the form shows exactly from → to."""
    from playwright.sync_api import expect

    page.goto(_quarantine_url(desk, reason_code="change_exceeds_limit"))
    page.locator(f"#row-{row['id']}").get_by_test_id(f"approve-{row['id']}").click()
    expect(page.locator("h1")).to_have_text(f"Approve change: row {row['id']}")
    expect(page.get_by_test_id("from")).to_have_text(f"{before:g}")
    expect(page.get_by_test_id("to")).to_have_text(str(usage))
    page.get_by_label("Note for the approval").fill(note)
    screenshot(page, "month-close-approve-change")
    page.get_by_role("button", name="Approve", exact=True).click()
    return _recorded(page)


def _create_addition(
    page: Any, desk: Desk, row: dict, agreement: int, usage: int, note: str, rerun: bool
) -> int:
    """From the approvals page's held rows: pick the agreement, write a note, approve."""
    from playwright.sync_api import expect

    page.goto(desk.site.page(f"/approvals?billing_date={BILLING_DATE}"))
    page.get_by_test_id(f"approve-{row['id']}").click()
    expect(page.locator("h1")).to_have_text(f"Create addition: row {row['id']}")
    expect(page.get_by_test_id("quantity")).to_have_text(str(usage))
    page.locator(f"input[name=agreement_id][value='{agreement}']").check()
    page.get_by_label("Note for the approval").fill(note)
    screenshot(page, "month-close-create-addition")
    if rerun:
        page.get_by_role("button", name=f"Approve and re-run {BILLING_DATE}").click()
    else:
        page.get_by_role("button", name="Approve", exact=True).click()
    return _recorded(page)


def _recorded(page: Any) -> int:
    from playwright.sync_api import expect

    notice = page.get_by_test_id("approval-notice")
    expect(notice).to_contain_text("recorded")
    return int(re.search(r"Approval (\d+) recorded", notice.inner_text()).group(1))


def _add_override(
    page: Any, desk: Desk, company: int, product: str, rule: str, quantity: int | None, note: str
) -> int:
    from playwright.sync_api import expect

    page.goto(desk.site.page("/overrides"))
    form = page.get_by_test_id("add-override")
    form.get_by_label("Company: type a name, then pick").fill(str(company))  # an id is taken too
    form.get_by_label("Product").select_option(product)
    form.get_by_label("Rule").select_option(rule)
    form.get_by_label("Quantity").fill("" if quantity is None else str(quantity))
    form.get_by_label("Note").fill(note)
    form.get_by_role("button", name="Add override").click()
    notice = page.get_by_test_id("notice")
    expect(notice).to_contain_text("added; it applies from the next run")
    return int(re.search(r"Override (\d+) added", notice.inner_text()).group(1))


# --- the month close -------------------------------------------------------------------------------------


def test_a_month_closed_at_the_desk(browser, desk: Desk) -> None:
    from playwright.sync_api import expect

    eng = desk.site.engine
    usage = invoice_usage(desk.sandbox)
    cw0 = desk.connectwise_before
    rows = _open_rows(desk)
    assert set(rows) == FIRST_RUN_KEYS, "the demo no longer plants what this test closes"

    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        login(page, desk.site, OPERATOR, _quarantine_url(desk))
        expect(page.get_by_test_id("total")).to_contain_text(f"{len(FIRST_RUN_KEYS)} rows")
        screenshot(page, "month-close-0-first-run")

        # round 1 --------------------------------------------------------------------------------------
        _map_by_candidate(page, desk)
        _map_by_picker(page, desk)
        approvals: dict[tuple[int, str], int] = {}
        for (company, product), (note, org) in APPROVE.items():
            row = rows[("change_exceeds_limit", company, product)]
            before = live_addition(cw0, company, product)["quantity"]
            approvals[(company, product)] = _approve_change(
                page, desk, row, note, usage[(org, product)], before
            )
        for (company, product), (agreement, org) in CREATE.items():
            row = rows[("no_live_addition", company, product)]
            note = f"Customer has {product} since October: add it to agreement {agreement}"
            approvals[(company, product)] = _create_addition(
                page, desk, row, agreement, usage[(org, product)], note, rerun=False
            )
        overrides = {
            (company, product): _add_override(page, desk, company, product, rule, quantity, note)
            for company, product, rule, quantity, note, _ in OVERRIDES
        }
        screenshot(page, "month-close-overrides")
        _dismiss(page, desk, rows, DISMISS)
        page.goto(desk.site.page(f"/approvals?billing_date={BILLING_DATE}"))
        expect(page.get_by_test_id("approvals").locator("tr[data-status=pending]")).to_have_count(
            len(approvals)
        )
        screenshot(page, "month-close-1-decided")

        # Everything decided is either waiting for the run (approvals, overrides, mappings) or closed.
        still_open = set(_open_rows(desk))
        waiting = {("change_exceeds_limit", *k) for k in APPROVE} | {("no_live_addition", *k) for k in CREATE}
        by_override = {
            ("change_exceeds_limit", 446, "itdr"),
            ("invalid_usage", 317, "edr"),
            ("duplicate_addition", 316, "edr"),
        }
        assert still_open == waiting | by_override | RESOLVED_BY_MAPPING

        _run_desk_run(desk, _rerun_from_quarantine(page, desk))

        # round 2: the newly mapped company has no Huntress addition yet ------------------------------
        rows = _open_rows(desk)
        assert set(rows) == {("no_live_addition", *k) for k in CREATE_AFTER_MAPPING}, set(rows)
        page.goto(_quarantine_url(desk))
        screenshot(page, "month-close-2-after-first-rerun")
        last = list(CREATE_AFTER_MAPPING)[-1]
        for (company, product), (agreement, org) in CREATE_AFTER_MAPPING.items():
            row = rows[("no_live_addition", company, product)]
            note = f"Harborview mapped to #{company}: start {product} billing on agreement {agreement}"
            approvals[(company, product)] = _create_addition(
                page, desk, row, agreement, usage[(org, product)], note, rerun=(company, product) == last
            )
        run_id = _triggered_run(page)  # "Approve and re-run" triggered it, as the operator
        _run_desk_run(desk, run_id)
        after_round_2 = connectwise_state(desk.sandbox)

        # round 3: the month stays closed; a re-run from the mapping page writes nothing ----------------
        assert _open_rows(desk) == {}
        page.goto(desk.site.page("/mapping"))
        page.get_by_test_id("rerun-bar").get_by_role(
            "button", name=f"Re-run billing date {BILLING_DATE}"
        ).click()
        _run_desk_run(desk, _triggered_run(page))

        page.goto(_quarantine_url(desk))
        expect(page.get_by_test_id("total")).to_have_text("0 rows in 0 groups")
        expect(page.locator("body")).to_contain_text("Nothing matches these filters.")
        expect(page.get_by_test_id("rerun-bar")).to_have_count(0)
        screenshot(page, "month-close-3-closed")
        page.goto(desk.site.page("/runs"))
        expect(page.get_by_test_id("runs")).to_contain_text(desk.desk_runs[-1])
        screenshot(page, "month-close-runs")
    finally:
        context.close()

    # --- ConnectWise holds what the decisions imply (the oracle: scenario + decisions) ----------------
    cw = connectwise_state(desk.sandbox)
    assert cw["additions"] == after_round_2["additions"], "the last re-run wrote nothing"
    before = {a["id"]: a["quantity"] for a in cw0["additions"]}
    after = {a["id"]: a["quantity"] for a in cw["additions"]}
    expected = dict(before)
    for (company, product), (_, org) in APPROVE.items():
        expected[live_addition(cw0, company, product)["id"]] = usage[(org, product)]
    for company, product, rule, quantity, _, org in OVERRIDES:
        addition = live_addition(cw0, company, product) if rule != "exclude" else None
        if rule == "minimum":
            expected[addition["id"]] = max(usage[(org, product)], quantity)
        elif rule == "fixed":
            expected[addition["id"]] = quantity
    assert {i: after[i] for i in before} == expected, "only what was decided changed"
    assert expected[live_addition(cw0, 446, "itdr")["id"]] == 25  # the minimum, not Huntress's 3
    created = sorted(
        (
            a["agreementId"],
            a["product"]["identifier"],
            a["quantity"],
            a["effectiveDate"][:10],
            a["billCustomer"],
        )
        for a in cw["additions"]
        if a["id"] not in before
    )
    assert created == sorted(
        (agreement, f"HUNTRESS-{product.upper()}", usage[(org, product)], BILLING_DATE, "Billable")
        for (_, product), (agreement, org) in {**CREATE, **CREATE_AFTER_MAPPING}.items()
    )
    # each write once: one audit entry per changed addition, one "added" per new addition
    writes = cw["audit_trail"][len(cw0["audit_trail"]) :]  # oldest first
    changed = {i for i in before if after[i] != before[i]}
    assert sorted(e["id"] for e in writes) == sorted(changed | (set(after) - set(before))), writes

    # --- the ledger names the approvals and the overrides -----------------------------------------------
    ledger = [
        c
        for c in store.list_changes(eng, billing_date=BILLING_DATE, limit=None, tenant="default")
        if c["run_id"] in desk.desk_runs
    ]
    by_key = {}
    for c in ledger:
        by_key.setdefault((c["cw_company_id"], c["product"]), []).append(c)
    for (company, product), approval_id in approvals.items():
        [row] = [c for c in by_key[(company, product)] if c["approval_id"] == approval_id]
        kind = (
            "created"
            if (company, product) in CREATE or (company, product) in CREATE_AFTER_MAPPING
            else "updated"
        )
        assert row["action"] == kind, row
    for (company, product), override_id in overrides.items():
        decided = [c for c in by_key[(company, product)] if c["override_id"] == override_id]
        assert decided, (company, product, by_key.get((company, product)))
        assert decided[0]["action"] == ("unchanged" if product == "edr" and company == 316 else "updated")

    # --- every decision records who (name and id) and when -------------------------------------------
    for approval_id in approvals.values():
        a = store.get_approval(eng, approval_id, tenant="default")
        assert (a["status"], a["approved_by"], a["approved_by_id"]) == ("applied", OPERATOR, OPERATOR), a
        assert a["approved_at"] is not None and a["note"] and a["applied_run_id"] in desk.desk_runs
    for o in store.list_overrides(eng, active=None, tenant="default"):
        assert o["id"] in overrides.values() and o["active"], o
        assert (o["created_by"], o["created_by_id"]) == (OPERATOR, OPERATOR) and o["created_at"] is not None
    mapped = {m["huntress_organization_id"]: m for m in store.list_org_map(eng, tenant="default")}
    assert {o: m["cw_company_id"] for o, m in mapped.items()} == {
        CANDIDATE_MAP[0]: CANDIDATE_MAP[1],
        PICKER_MAP[0]: PICKER_MAP[1],
    }
    for m in mapped.values():
        assert (m["created_by"], m["created_by_id"]) == (OPERATOR, OPERATOR) and m["created_at"] is not None
    decided = store.list_quarantine(eng, billing_date=BILLING_DATE, status=None, limit=None, tenant="default")
    assert decided and all(r["status"] != "open" for r in decided)
    for r in decided:
        if r["status"] == "dismissed":
            assert DISMISS[row_key(r)] == r["note"], r
            assert (r["resolved_by"], r["resolved_by_id"]) == (OPERATOR, OPERATOR) and r["resolved_at"], r
        else:
            # A row an approved write resolved names the approval; the id keeps the run (issue 20 §3).
            assert r["resolved_by_id"].removeprefix("sync:") in desk.desk_runs, r
            assert r["resolved_by"] == r["resolved_by_id"] or r["resolved_by"].startswith("approval #"), r
            assert r["resolved_at"] is not None
    assert {row_key(r) for r in decided if r["status"] == "dismissed"} == set(DISMISS)
    for run_id in desk.desk_runs:
        run = _airflow_run(desk, run_id)
        assert (run["state"], run["triggering_user_name"], run["run_type"]) == ("success", OPERATOR, "manual")


# --- the viewer: sees all of it, does none of it -------------------------------------------------------------


def _viewer_pages(desk: Desk) -> list[str]:
    eng = desk.site.engine
    rows = store.list_quarantine(eng, status=None, limit=None, tenant="default")
    run = store.list_runs(eng, limit=1, tenant="default")[0]["run_id"]
    held = next((r for r in rows if r["reason_code"] == "no_live_addition"), rows[0])
    return [
        "/quarantine",
        "/quarantine?status=all",  # grouped, every decision
        "/quarantine?status=all&view=rows",
        f"/quarantine/{rows[0]['id']}",
        "/mapping",
        "/overrides",
        "/approvals?status=all",
        f"/approvals/new?row={held['id']}",
        "/runs",
        f"/runs/{quote(run, safe='')}",
        f"/runs/{quote(run, safe='')}/report",
    ]


def _desk_state(desk: Desk) -> dict[str, Any]:
    eng = desk.site.engine
    return {
        "quarantine": store.list_quarantine(eng, status=None, limit=None, tenant="default"),
        "org_map": store.list_org_map(eng, tenant="default"),
        "overrides": store.list_overrides(eng, active=None, tenant="default"),
        "approvals": store.list_approvals(eng, limit=None, tenant="default"),
        "ledger": store.list_changes(eng, limit=None, tenant="default"),
        "runs": store.list_runs(eng, limit=None, tenant="default"),
        "dag_runs": sorted(r["dag_run_id"] for r in _airflow_runs(desk)),
        "connectwise": connectwise_state(desk.sandbox)["additions"],
    }


def test_a_viewer_sees_all_of_it_and_can_do_none_of_it(browser, desk: Desk) -> None:
    """Every page 200 with what the database holds on it; every action route refused to the viewer's
    own, valid form token, in the browser and by POST, and nothing changes anywhere."""
    from playwright.sync_api import expect

    from billing_sync.review.security import CSRF_COOKIE, Csrf, Reviewer

    eng = desk.site.engine
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        login(page, desk.site, VIEWER, desk.site.page("/quarantine?status=all"))
        expect(page.get_by_test_id("user")).to_have_text(VIEWER)
        for path in _viewer_pages(desk):
            answer = page.goto(desk.site.page(path))
            assert answer is not None and answer.status == 200, (path, answer and answer.status)
            if not path.endswith("/report"):  # the report is the run's own HTML file
                expect(page.get_by_test_id("user")).to_have_text(VIEWER)
        page.goto(desk.site.page("/quarantine?status=all"))
        shown = {
            int(i) for i in page.locator("tr[data-row-id]").evaluate_all("rs => rs.map(r => r.dataset.rowId)")
        }
        assert shown == {
            r["id"] for r in store.list_quarantine(eng, status=None, limit=None, tenant="default")
        }
        screenshot(page, "month-close-viewer-quarantine")
        page.goto(desk.site.page("/approvals?status=all"))
        shown = {
            int(i)
            for i in page.locator("tr[data-approval-id]").evaluate_all(
                "rs => rs.map(r => r.dataset.approvalId)"
            )
        }
        assert shown == {a["id"] for a in store.list_approvals(eng, limit=None, tenant="default")}
        screenshot(page, "month-close-viewer-approvals")
        page.goto(desk.site.page("/overrides"))
        shown = {
            int(i)
            for i in page.locator("tr[data-override-id]").evaluate_all(
                "rs => rs.map(r => r.dataset.overrideId)"
            )
        }
        assert shown == {o["id"] for o in store.list_overrides(eng, active=None, tenant="default")}
        page.goto(desk.site.page("/mapping"))
        for org in store.list_org_map(eng, tenant="default"):
            expect(
                page.locator(f"#org-{org['huntress_organization_id']}").get_by_test_id("rule")
            ).to_have_text("org_map")
        screenshot(page, "month-close-viewer-mapping")

        # No form is offered (test_a_viewer_is_offered_no_action), but the page still carries the
        # viewer's own form token: the routes, not the missing buttons, must refuse it.
        expect(page.get_by_test_id("read-only")).to_contain_text("Read only")
        token = page.locator("meta[name=csrf-token]").get_attribute("content")
        nonce = next(c["value"] for c in context.cookies() if c["name"] == CSRF_COOKIE)
        assert token == Csrf(desk.site.secrets["secret_key"].encode()).token(nonce, Reviewer(VIEWER, VIEWER))

        before = _desk_state(desk)

        # By POST, with the valid token, every action route.
        rows = before["quarantine"]
        held = next((r for r in rows if r["reason_code"] == "no_live_addition"), rows[0])
        change = next((r for r in rows if r["reason_code"] == "change_exceeds_limit"), rows[0])
        mapped = before["org_map"][0]["huntress_organization_id"] if before["org_map"] else PICKER_MAP[0]
        override = before["overrides"][0]["id"] if before["overrides"] else 1
        approval = before["approvals"][0]["id"] if before["approvals"] else 1

        def needs(power: str) -> str:  # the server refuses by the area's power, naming it
            return f"This needs the {power} power on tenant default; ask an administrator"

        attempts = [
            (f"/quarantine/{rows[0]['id']}", {"action": "dismiss", "note": "viewer"}, needs("Quarantine")),
            (f"/quarantine/{rows[0]['id']}", {"action": "resolve"}, needs("Quarantine")),
            (f"/quarantine/{rows[0]['id']}", {"action": "reopen"}, needs("Quarantine")),
            ("/mapping", {"organization_id": "133", "company_id": str(CANDIDATE_MAP[1])}, needs("Mappings")),
            (
                "/mapping/bulk",
                {"organization_id": ["133", "138"], "company_id": str(CANDIDATE_MAP[1])},
                needs("Mappings"),
            ),
            (f"/mapping/{mapped}/delete", {}, needs("Mappings")),
            (
                "/overrides",
                {"company_id": "446", "product": "sat", "rule": "fixed", "quantity": "1"},
                needs("Overrides"),
            ),
            (f"/overrides/{override}/retire", {}, needs("Overrides")),
            ("/approvals", {"row_id": str(change["id"]), "note": "viewer"}, needs("Approvals")),
            (
                "/approvals",
                {"row_id": str(held["id"]), "agreement_id": "1583", "note": "viewer"},
                needs("Approvals"),
            ),
            (
                "/approvals",
                {"row_id": str(held["id"]), "agreement_id": "1583", "rerun": "1"},
                needs("Approvals"),
            ),
            (f"/approvals/{approval}/revoke", {"note": "viewer"}, needs("Approvals")),
            ("/rerun", {"billing_date": BILLING_DATE, "back": "mapping"}, needs("Apply")),
        ]
        for path, form, detail in attempts:
            body = [(k, x) for k, v in form.items() for x in (v if isinstance(v, list) else [v])]
            body.append(("csrf_token", token))
            refused = context.request.post(
                desk.site.page(path),
                data="&".join(f"{quote(k)}={quote(v)}" for k, v in body),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Origin": desk.site.url,
                    **SAME_ORIGIN,
                },
                max_redirects=0,
            )
            assert refused.status == 403, (path, form, refused.status, refused.text()[:300])
            assert refused.json()["detail"].startswith(detail), (path, refused.text())
        assert _desk_state(desk) == before, "the viewer changed something"
    finally:
        context.close()


ACTION_BUTTONS = """() => Array.from(document.querySelectorAll('button, input[type=submit]'))
  .filter(b => b.form && b.form.method.toLowerCase() === 'post' && !b.disabled
               && !b.closest('fieldset[disabled]') && b.getClientRects().length > 0)
  .map(b => (b.form.getAttribute('action') || '') + ' ' + (b.textContent || b.value || '').trim())"""


def test_a_viewer_is_offered_no_action(browser, desk: Desk) -> None:
    """Issue 11 §8's viewer "can see all of it and do none of it": no enabled POST form on any page."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    offered: dict[str, list[str]] = {}
    try:
        login(page, desk.site, VIEWER, desk.site.page("/quarantine?status=all"))
        for path in _viewer_pages(desk):
            page.goto(desk.site.page(path))
            buttons = Counter(re.sub(r"/\d+", "/<id>", b) for b in page.evaluate(ACTION_BUTTONS))
            if buttons:
                offered[path] = [f"{b} x{n}" for b, n in sorted(buttons.items())]
    finally:
        context.close()
    assert offered == {}, json.dumps(offered, indent=1)[:3000]
