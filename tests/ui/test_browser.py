"""The plugin in the real Airflow API server, through Chromium: log in, read, act, and be refused.

One module-scoped server over a billing database filled by a real DAG run of generate(40, 7).
Screenshots of every page land in test-artifacts/ui/.
"""

from __future__ import annotations

import re
from urllib.parse import quote

import httpx
import pytest

from billing_sync import store
from tests.ui.conftest import (
    INTENDED_COMPANY,
    SCRIPT_NAME,
    UNMAPPED_ORG,
    XSS_ORG,
    Site,
    login,
    screenshot,
)

pytestmark = pytest.mark.browser

PAGES = ["/", "/quarantine", "/quarantine/1", "/runs", "/mapping"]


def _newest_run(site: Site) -> dict:
    runs = store.list_runs(site.engine, limit=1)
    assert runs, "the DAG run recorded no billing run"
    return runs[0]


def test_pages_after_login(page, site: Site) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("user")).to_have_text("reviewer")
    expect(page.locator("h1")).to_have_text("Billing quarantine")
    assert page.locator("tr[data-row-id]").count() == store.count_quarantine(site.engine, status="open") > 0
    screenshot(page, "quarantine")

    row_id = page.locator("tr[data-row-id]").first.get_attribute("data-row-id")
    page.goto(site.page(f"/quarantine/{row_id}"))
    expect(page.locator("h1")).to_contain_text(f"Quarantine row {row_id}")
    screenshot(page, "quarantine-row")

    page.goto(site.page("/runs"))
    run = _newest_run(site)
    expect(page.get_by_test_id("runs")).to_contain_text(run["run_id"])
    screenshot(page, "runs")

    page.get_by_role("link", name=run["run_id"]).click()
    expect(page.locator("h1")).to_have_text(f"Run {run['run_id']}")
    href = page.get_by_test_id("dag-run-link").get_attribute("href")
    assert href == f"/dags/huntress_connectwise_billing_sync/runs/{quote(run['run_id'], safe='')}"
    screenshot(page, "run")

    page.goto(site.page("/mapping"))
    expect(page.locator("h1")).to_have_text("Organization mapping")
    statuses = page.locator("tr[data-org-id]").evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses[0] != "matched" and "matched" in statuses
    assert statuses == sorted(statuses, key=["ambiguous", "unmapped", "matched"].index), "problems first"
    screenshot(page, "mapping")


def test_dismiss_leaves_open_list_and_records_user(page, site: Site) -> None:
    from playwright.sync_api import expect

    page.goto(site.page("/quarantine?status=open&reason_code=change_exceeds_limit"))
    row = page.locator("tr[data-row-id]").first
    row_id = int(row.get_attribute("data-row-id"))
    row.get_by_placeholder("Note (required to dismiss)").fill("Confirmed with the customer: seasonal staff")
    row.get_by_role("button", name="Dismiss").click()

    expect(page.get_by_role("status")).to_have_text(f"Row {row_id} dismissed.")
    assert "reason_code=change_exceeds_limit" in page.url, "the filters survive the action"
    expect(page.locator(f"#row-{row_id}")).to_have_count(0)
    saved = store.get_quarantine(site.engine, row_id)
    assert saved["status"] == "dismissed"
    assert saved["resolved_by"] == "reviewer"
    assert saved["note"] == "Confirmed with the customer: seasonal staff"
    assert saved["resolved_at"] is not None

    page.goto(site.page("/quarantine?status=dismissed"))
    expect(page.locator(f"#row-{row_id}")).to_contain_text("Confirmed with the customer")
    screenshot(page, "quarantine-dismissed")


def test_map_unmapped_organization(page, site: Site) -> None:
    from playwright.sync_api import expect

    page.goto(site.page("/mapping"))
    row = page.locator(f"#org-{UNMAPPED_ORG}")
    expect(row.get_by_test_id("status")).to_have_text("unmapped")
    row.get_by_label(f"Company id for organization {UNMAPPED_ORG}").fill(str(INTENDED_COMPANY))
    row.get_by_label(f"Note for organization {UNMAPPED_ORG}").fill("Same customer, short name in ConnectWise")
    row.get_by_role("button", name="Map").click()

    expect(page.get_by_role("status")).to_have_text(f"Organization {UNMAPPED_ORG} mapped.")
    row = page.locator(f"#org-{UNMAPPED_ORG}")
    expect(row.get_by_test_id("status")).to_have_text("matched")
    expect(row.get_by_test_id("rule")).to_have_text("org_map")
    mapped = {r["huntress_organization_id"]: r for r in store.list_org_map(site.engine)}[UNMAPPED_ORG]
    assert (mapped["cw_company_id"], mapped["created_by"]) == (INTENDED_COMPANY, "reviewer")
    screenshot(page, "mapping-added")

    row.get_by_role("button", name="Remove").click()
    expect(page.locator(f"#org-{UNMAPPED_ORG}").get_by_test_id("status")).to_have_text("unmapped")
    assert UNMAPPED_ORG not in {r["huntress_organization_id"] for r in store.list_org_map(site.engine)}


def test_open_run_report(page, site: Site) -> None:
    from playwright.sync_api import expect

    run = _newest_run(site)
    page.goto(site.page(f"/runs/{quote(run['run_id'], safe='')}"))
    files = page.get_by_test_id("report-files").get_by_role("link")
    names = files.all_inner_texts()
    assert "outcomes.csv" in names
    first = names[0]
    files.first.click()
    if first.endswith(".html"):
        expect(page.locator("body")).not_to_be_empty()
    assert page.url.endswith(f"/files/{first}")
    screenshot(page, "report")

    response = httpx.get(page.url, cookies={c["name"]: c["value"] for c in page.context.cookies()})
    assert response.status_code == 200
    assert "sandbox" in response.headers["content-security-policy"]


def test_script_names_render_as_text(page, site: Site) -> None:
    from playwright.sync_api import expect

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(site.page("/quarantine?reason_code=unmapped_organization"))
    expect(page.locator("table")).to_contain_text(SCRIPT_NAME)
    page.goto(site.page("/mapping"))
    expect(page.locator(f"#org-{XSS_ORG}")).to_contain_text(SCRIPT_NAME)
    assert page.evaluate("window.__xss") is None
    assert dialogs == []


def test_embedded_in_airflow_ui(page, site: Site) -> None:
    """The nav entry opens the page inside the Airflow UI; a DAG-run link navigates the UI itself."""
    from playwright.sync_api import expect

    page.goto(f"{site.url}/plugin/billing-runs")
    frame = page.frame_locator("iframe[title='Billing runs']")
    expect(frame.locator("h1")).to_have_text("Billing runs")
    screenshot(page, "airflow-embedded-runs")
    frame.get_by_role("link", name="DAG run").first.click()
    page.wait_for_url(re.compile(r"/dags/huntress_connectwise_billing_sync/runs/"))
    expect(page.locator("iframe")).to_have_count(0)


def test_anonymous_requests_are_refused(site: Site) -> None:
    run = quote(_newest_run(site)["run_id"], safe="")
    for path in [*PAGES, f"/runs/{run}", f"/runs/{run}/files/outcomes.csv"]:
        api = httpx.get(site.page(path))
        assert api.status_code == 401, (path, api.status_code)
        browser = httpx.get(site.page(path), headers={"Accept": "text/html"})
        assert browser.status_code == 303, (path, browser.status_code)
        assert browser.headers["location"].startswith("/auth/login?next=")
    for path, form in [
        ("/quarantine/1", {"action": "dismiss", "note": "x"}),
        ("/mapping", {"organization_id": "1"}),
    ]:
        assert httpx.post(site.page(path), data=form).status_code == 401, path
    forged = httpx.get(site.page("/quarantine"), cookies={"_token": "not-a-jwt"})
    assert forged.status_code in (401, 403)


def test_viewer_reads_but_cannot_act(site: Site) -> None:
    headers = {"Authorization": f"Bearer {site.token('watcher')}"}
    with httpx.Client(headers=headers) as client:
        assert client.get(site.page("/quarantine")).status_code == 200
        refused = client.post(site.page("/quarantine/1"), data={"action": "resolve"})
        assert refused.status_code == 403
    assert store.get_quarantine(site.engine, 1)["status"] != "resolved"


def test_cross_site_post_is_refused(browser, site: Site) -> None:
    """A logged-in browser posting from another origin, or without the page's token, is refused."""
    context = browser.new_context()
    page = context.new_page()
    try:
        login(page, site, "reviewer", site.page("/quarantine"))
        open_id = page.locator("tr[data-row-id]").first.get_attribute("data-row-id")
        request = page.context.request
        no_token = request.post(site.page(f"/quarantine/{open_id}"), form={"action": "resolve"})
        assert no_token.status == 403
        token = page.locator("input[name=csrf_token]").first.get_attribute("value")
        cross = request.post(
            site.page(f"/quarantine/{open_id}"),
            form={"action": "resolve", "csrf_token": token},
            headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross.status == 403
        assert store.get_quarantine(site.engine, int(open_id))["status"] == "open"
    finally:
        context.close()
