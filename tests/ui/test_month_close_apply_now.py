"""Issue 20, done when: the demo month closed through the pages only, every decision by *Apply now*,
with the monthly DAG paused and a scheduled run waiting for its invoice the whole time; the pages show
each apply's progress and result without a reload.

`make airflow` on a free port with the scheduler's own schedule on (tests/helpers/local_airflow.py):
its sandbox, its seed run of the demo's billing date, LocalExecutor. Before the desk starts, the
monthly DAG is unpaused until the scheduler has created its scheduled run of the newest billing day
and that run's sensor waits for an invoice the sandbox does not have (the issue's `scheduled__…`
holding `max_active_runs=1`), then paused again, as Airflow deploys it. The run stays there, waiting,
to the end: nothing of the desk goes through the monthly DAG.

`admin` then takes every decision of tests/helpers/demo_month.py (the same month as
tests/ui/test_month_close.py, which closes it by re-runs): approvals, new additions, overrides and
mappings each with its *Apply now* button, then the new additions the mapping calls for, and
dismissals (which write nothing). After each Apply now the page's live line (static/live.js) is
watched from the first paint: it must go to success with what was written, the page never reloaded.
The time from the click to that line is printed for each; the bound asserted is generous (a loaded
2-core machine), the 30 s target is `make bench`'s (docs/benchmarks.md, row 1b).

ConnectWise (the sandbox's own state) must then hold exactly what the decisions imply, each write
made once, and no row of the billing date is open.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_sync import store
from billing_sync.names import APPLY_DAG_ID
from tests.helpers.demo_month import (
    APPROVE,
    CANDIDATE_MAP,
    CREATE,
    CREATE_AFTER_MAPPING,
    DISMISS,
    FIRST_RUN_KEYS,
    OVERRIDES,
    PICKER_MAP,
    connectwise_state,
    invoice_usage,
    live_addition,
    row_key,
)
from tests.helpers.local_airflow import START_TIMEOUT_S, api, running, sandbox_urls, wait_for_apply_dag
from tests.ui.conftest import BILLING_DATE, DAG_ID, Site, login, screenshot

pytestmark = [pytest.mark.integration, pytest.mark.browser]

APPLIED_WITHIN_S = 150  # the bound on a loaded machine; the 30 s target is measured by `make bench`
TARGET_S = 30
# Every data-state the live line takes, recorded from the first paint of each page on.
WATCH = """
window.__states = [];
new MutationObserver(function () {
  var box = document.querySelector("[data-live]");
  var state = box && box.getAttribute("data-state");
  if (state && window.__states[window.__states.length - 1] !== state) window.__states.push(state);
}).observe(document, {subtree: true, attributes: true, childList: true});
"""


@pytest.fixture
def scheduled_airflow(tmp_path: Path) -> Iterator[Site]:
    with running(tmp_path, schedule=True) as site:
        yield site


# --- the monthly DAG: paused, a scheduled run waiting for its invoice ------------------------------------


def _hold_the_slot(client: httpx.Client) -> str:
    """Unpause until the scheduler's scheduled run waits in its sensor, then pause: that run's id."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        answer = client.patch(f"/dags/{DAG_ID}", json={"is_paused": False})
        if answer.status_code == 200:
            break
        assert answer.status_code == 404 and time.monotonic() < deadline, answer.text
        time.sleep(2)
    runs: list[dict[str, Any]] = []
    while True:
        try:  # a poll, not the point: a slow answer on a loaded machine is asked again
            runs = client.get(f"/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
            waiting = [
                r
                for r in runs
                if r["run_type"] == "scheduled"
                and _sensor_state(client, r["dag_run_id"]) == "up_for_reschedule"
            ]
        except httpx.TimeoutException:
            waiting = []
        if waiting:
            break
        assert time.monotonic() < deadline, f"no scheduled run waits for its invoice: {runs}"
        time.sleep(2)
    paused = client.patch(f"/dags/{DAG_ID}", json={"is_paused": True})
    assert paused.status_code == 200 and paused.json()["is_paused"] is True, paused.text
    [run] = waiting
    assert run["logical_date"][:10] != BILLING_DATE, "the scheduled run must be of a day without invoice"
    return str(run["dag_run_id"])


def _sensor_state(client: httpx.Client, run_id: str) -> str | None:
    got = client.get(f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/wait_for_invoice")
    return got.json().get("state") if got.status_code == 200 else None


def _still_held(client: httpx.Client, scheduled: str) -> None:
    """The monthly DAG is paused, its scheduled run still waits, and it has no run of the desk's."""
    assert client.get(f"/dags/{DAG_ID}").json()["is_paused"] is True
    run = client.get(f"/dags/{DAG_ID}/dagRuns/{scheduled}").json()
    assert run["state"] == "running" and _sensor_state(client, scheduled) == "up_for_reschedule", run
    runs = client.get(f"/dags/{DAG_ID}/dagRuns").json()["dag_runs"]
    assert {r["run_type"] for r in runs} <= {"scheduled", "manual"} and len(runs) <= 2, runs


# --- the desk ------------------------------------------------------------------------------------------


class Desk:
    def __init__(self, site: Site, page: Any) -> None:
        self.site, self.page = site, page
        self.applies: list[tuple[str, float, str]] = []  # (decision, seconds click → written, run id)

    def open_rows(self) -> dict[tuple[str, Any, str | None], dict[str, Any]]:
        rows = store.list_quarantine(
            self.site.engine, status="open", billing_date=BILLING_DATE, limit=None, tenant="default"
        )
        return {row_key(r): r for r in rows}

    def go(self, path: str) -> None:
        self.page.goto(self.site.page(path))

    def apply_now(self, what: str, click: Any) -> None:
        """Click a decision's Apply now; follow the live line on the page it lands on to success."""
        from playwright.sync_api import expect

        started = time.monotonic()
        click()
        notice = self.page.get_by_test_id("rerun-notice")
        expect(notice).to_contain_text("Apply now: run apply__")
        self.page.evaluate("window.__not_reloaded = true")
        live = self.page.get_by_test_id("live")
        expect(live).to_have_attribute("data-state", "success", timeout=APPLIED_WITHIN_S * 1000)
        expect(live).to_contain_text("Written: ", timeout=15_000)
        took = time.monotonic() - started
        assert self.page.evaluate("window.__not_reloaded") is True, f"{what}: the page was reloaded"
        states = self.page.evaluate("window.__states")
        # In order, never back: queued (maybe missed between two polls), running, success.
        assert states == [s for s in ("queued", "running", "success") if s in states], (what, states)
        assert states[-1] == "success", (what, states)
        # Then the page's lists are swapped for what they are now (still no reload).
        expect(self.page.locator("body")).to_have_attribute("data-live-refreshed", "done")
        href = notice.get_by_role("link", name="Open the DAG run").get_attribute("href")
        self.applies.append((what, took, href.rsplit("/", 1)[1]))
        print(f"Apply now, {what}: click → written in {took:.1f} s")

    def approve(self, row: dict[str, Any], note: str, agreement: int | None = None) -> None:
        from playwright.sync_api import expect

        self.go(f"/approvals/new?row={row['id']}")
        if agreement is not None:
            self.page.locator(f"input[name=agreement_id][value='{agreement}']").check()
        self.page.get_by_label("Note for the approval").fill(note)
        self.apply_now(f"approval of row {row['id']}", self.page.get_by_test_id("approve-apply").click)
        # The approvals page it lands on no longer lists the row as held: the write resolved it.
        held = self.page.locator(f"#approval-lists a[href$='/quarantine/{row['id']}']")
        expect(held).to_have_count(0)

    def override(self, company: int, product: str, rule: str, quantity: int | None, note: str) -> None:
        self.go("/overrides")
        form = self.page.get_by_test_id("add-override")
        form.get_by_label("Company: type a name, then pick").fill(str(company))  # an id is taken too
        form.get_by_label("Product").select_option(product)
        form.get_by_label("Rule").select_option(rule)
        form.get_by_label("Quantity").fill("" if quantity is None else str(quantity))
        form.get_by_label("Note").fill(note)
        self.apply_now(f"override {rule} of {company} {product}", form.get_by_test_id("override-apply").click)

    def map_organization(self, org: int, company: int, name: str, typed: str | None) -> None:
        """From the organization's group in the queue: a candidate's button, or the picker's match."""
        from playwright.sync_api import expect

        reason = "unmapped_organization" if typed else "ambiguous_company_match"
        self.go(f"/quarantine?billing_date={BILLING_DATE}&reason_code={reason}")
        head = self.page.locator(f"#group-organization-{org}")
        head.get_by_test_id(f"apply-map-{org}").get_by_role("checkbox").check()
        if typed:
            search = head.get_by_label(f"Find a company for organization {org}")
            expect(search).to_have_attribute("data-picker-ready", "")
            search.press_sequentially(typed, delay=30)
        choice = head.get_by_role("button", name=f"Map to this company: {name} #{company}", exact=True)
        self.apply_now(f"mapping of organization {org}", choice.click)
        # The queue below shows the organization's rows resolved: its card is gone from the open ones.
        expect(self.page.locator(f"#queue #group-organization-{org}")).to_have_count(0)

    def dismiss(self, row: dict[str, Any], note: str) -> None:
        from playwright.sync_api import expect

        self.go(f"/quarantine/{row['id']}")
        self.page.get_by_label(f"Note for row {row['id']}").fill(note)
        self.page.get_by_role("button", name="Dismiss", exact=True).click()
        expect(self.page.get_by_role("status")).to_contain_text(f"Row {row['id']} dismissed")


def test_the_demo_month_closed_by_apply_now_while_the_monthly_dag_waits(
    browser, scheduled_airflow: Site
) -> None:
    site = scheduled_airflow
    sandboxes = sandbox_urls(site)
    usage = invoice_usage(sandboxes)
    cw0 = connectwise_state(sandboxes)
    wait_for_apply_dag(site)
    rows = Desk(site, None).open_rows()
    assert set(rows) == FIRST_RUN_KEYS, "the demo no longer plants what this test closes"
    with api(site) as client:
        scheduled = _hold_the_slot(client)

        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        context.set_default_timeout(30_000)
        context.add_init_script(WATCH)
        desk = Desk(site, context.new_page())
        try:
            login(desk.page, site, "admin", site.page("/quarantine"))
            for (company, product), (note, _) in APPROVE.items():
                desk.approve(rows[("change_exceeds_limit", company, product)], note)
            screenshot(desk.page, "apply-now-month-approved")
            for (company, product), (agreement, _) in CREATE.items():
                note = f"Customer has {product} since October: add it to agreement {agreement}"
                desk.approve(rows[("no_live_addition", company, product)], note, agreement)
            for company, product, rule, quantity, note, _ in OVERRIDES:
                desk.override(company, product, rule, quantity, note)
            _still_held(client, scheduled)
            desk.map_organization(*CANDIDATE_MAP, typed=None)
            desk.map_organization(*PICKER_MAP)
            screenshot(desk.page, "apply-now-month-mapped")

            # The newly mapped company has no Huntress addition yet: its keys came back to create.
            created = desk.open_rows()
            assert {k for k in created if k[0] == "no_live_addition" and k not in DISMISS} == {
                ("no_live_addition", *k) for k in CREATE_AFTER_MAPPING
            }
            for (company, product), (agreement, _) in CREATE_AFTER_MAPPING.items():
                note = f"Harborview mapped to #{company}: start {product} billing on agreement {agreement}"
                desk.approve(created[("no_live_addition", company, product)], note, agreement)

            left = desk.open_rows()
            assert set(left) == set(DISMISS), "what the decisions did not settle is what is dismissed"
            for key, note in DISMISS.items():
                desk.dismiss(left[key], note)
            assert desk.open_rows() == {}
            desk.go(f"/quarantine?billing_date={BILLING_DATE}")
            screenshot(desk.page, "apply-now-month-closed")
            desk.go("/runs")
            screenshot(desk.page, "apply-now-month-runs")
        finally:
            context.close()
        _still_held(client, scheduled)
        apply_runs = client.get(f"/dags/{APPLY_DAG_ID}/dagRuns", params={"limit": 100}).json()["dag_runs"]

    # --- each decision applied by a run of its own, each shown to the end ---------------------------------
    within = sum(took <= TARGET_S for _, took, _ in desk.applies)
    print(f"{within} of {len(desk.applies)} applies within {TARGET_S} s on this machine")
    expected_applies = len(APPROVE) + len(CREATE) + len(OVERRIDES) + 2 + len(CREATE_AFTER_MAPPING)
    assert len(desk.applies) == expected_applies
    assert {run_id for *_, run_id in desk.applies} == {r["dag_run_id"] for r in apply_runs}
    assert all(r["state"] == "success" for r in apply_runs), apply_runs

    # --- ConnectWise holds what the decisions imply (the oracle: scenario + decisions) -------------------
    cw = connectwise_state(sandboxes)
    before = {a["id"]: a["quantity"] for a in cw0["additions"]}
    after = {a["id"]: a["quantity"] for a in cw["additions"]}
    expected = dict(before)
    for (company, product), (_, org) in APPROVE.items():
        expected[live_addition(cw0, company, product)["id"]] = usage[(org, product)]
    for company, product, rule, quantity, _, org in OVERRIDES:
        if rule == "minimum":
            expected[live_addition(cw0, company, product)["id"]] = max(usage[(org, product)], quantity)
        elif rule == "fixed":
            expected[live_addition(cw0, company, product)["id"]] = quantity
    assert {i: after[i] for i in before} == expected, "only what was decided changed"
    new = sorted(
        (a["agreementId"], a["product"]["identifier"], a["quantity"], a["effectiveDate"][:10])
        for a in cw["additions"]
        if a["id"] not in before
    )
    assert new == sorted(
        (agreement, f"HUNTRESS-{product.upper()}", usage[(org, product)], BILLING_DATE)
        for (_, product), (agreement, org) in {**CREATE, **CREATE_AFTER_MAPPING}.items()
    )
    writes = cw["audit_trail"][len(cw0["audit_trail"]) :]
    changed = {i for i in before if after[i] != before[i]}
    assert sorted(e["id"] for e in writes) == sorted(changed | (set(after) - set(before))), "each write once"

    # --- the ledger: every write by an apply run, with its money, naming its decision ---------------------
    runs = {run_id for *_, run_id in desk.applies}
    ledger = [c for c in store.list_changes(site.engine, limit=None, tenant="default") if c["run_id"] in runs]
    written = [c for c in ledger if c["action"] in ("updated", "created")]
    assert len(written) == len(changed) + len(set(after) - set(before)), ledger
    assert all(c["monthly_amount_delta"] is not None for c in written), written
    assert all(c["approval_id"] is not None or c["override_id"] is not None for c in written), written
    for approval in store.list_approvals(site.engine, tenant="default"):
        assert approval["status"] == "applied" and approval["applied_run_id"] in runs, approval
    assert re.fullmatch(r"scheduled__.+", scheduled), scheduled
