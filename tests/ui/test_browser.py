"""The plugin in the real Airflow API server, through Chromium: log in, read, act, and be refused.

One module-scoped server over a billing database filled by a real DAG run of generate(40, 7).
Screenshots of every page land in test-artifacts/ui/.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from billing_sync import store
from tests.ui.conftest import (
    CONFIG_VARIABLE,
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
    runs = store.list_runs(site.engine, limit=1, tenant="default")
    assert runs, "the DAG run recorded no billing run"
    return runs[0]


def test_pages_after_login(page, site: Site) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("user")).to_have_text("reviewer")
    expect(page.locator("h1")).to_have_text("Billing quarantine")
    assert (
        page.locator("tr[data-row-id]").count()
        == store.count_quarantine(site.engine, status="open", tenant="default")
        > 0
    )
    screenshot(page, "quarantine")

    row_id = page.locator("tr[data-row-id]").first.get_attribute("data-row-id")
    page.goto(site.page(f"/quarantine/{row_id}"))
    expect(page.locator("h1")).to_contain_text(f"Quarantine row {row_id}")
    screenshot(page, "quarantine-row")

    page.goto(site.page("/runs"))
    run = _newest_run(site)
    expect(page.get_by_test_id("runs")).to_contain_text(run["run_id"])
    screenshot(page, "runs")

    page.get_by_test_id("runs").get_by_role("link", name=run["run_id"]).click()
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

    expect(page.get_by_role("status")).to_contain_text(f"Row {row_id} dismissed: ")
    assert "reason_code=change_exceeds_limit" in page.url, "the filters survive the action"
    expect(page.locator(f"#row-{row_id}")).to_have_count(0)
    saved = store.get_quarantine(site.engine, row_id, tenant="default")
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

    expect(page.get_by_role("status")).to_contain_text(f"Organization {UNMAPPED_ORG} mapped: ")
    row = page.locator(f"#org-{UNMAPPED_ORG}")
    expect(row.get_by_test_id("status")).to_have_text("matched")
    expect(row.get_by_test_id("rule")).to_have_text("org_map")
    mapped = {r["huntress_organization_id"]: r for r in store.list_org_map(site.engine, tenant="default")}[
        UNMAPPED_ORG
    ]
    assert (mapped["cw_company_id"], mapped["created_by"]) == (INTENDED_COMPANY, "reviewer")
    screenshot(page, "mapping-added")

    row.get_by_role("button", name="Remove").click()
    expect(page.locator(f"#org-{UNMAPPED_ORG}").get_by_test_id("status")).to_have_text("unmapped")
    assert UNMAPPED_ORG not in {
        r["huntress_organization_id"] for r in store.list_org_map(site.engine, tenant="default")
    }


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
    expect(page.get_by_test_id("quarantine")).to_contain_text(SCRIPT_NAME)  # the cards, a table each
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
    assert store.get_quarantine(site.engine, 1, tenant="default")["status"] != "resolved"


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
        assert store.get_quarantine(site.engine, int(open_id), tenant="default")["status"] == "open"
    finally:
        context.close()


# --- issue 10 §5: who may change who is billed, against the real auth manager ----------------------


def _form_token(client: httpx.Client, site: Site) -> str:
    """GET a page as this client: its CSRF cookie lands in the client's jar, its token is returned."""
    html = client.get(site.page("/quarantine?status=all")).text
    return re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})"', html).group(1)


def _an_open_row(site: Site) -> int:
    rows = store.list_quarantine(site.engine, status="open", limit=None, tenant="default")
    assert rows, "the DAG run quarantined nothing"
    return rows[-1]["id"]


def _state(site: Site) -> tuple[list, list]:
    return store.list_quarantine(site.engine, status=None, limit=None, tenant="default"), store.list_org_map(
        site.engine, tenant="default"
    )


def test_viewer_with_a_valid_form_token_is_refused_on_every_action(browser, site: Site) -> None:
    """The viewer's own token, from its own page, provably valid: still 403 on all five actions, and
    the refusal is Airflow's permission check, not the form token's."""
    from billing_sync.review.security import CSRF_COOKIE, Csrf, Reviewer

    context = browser.new_context()
    page = context.new_page()
    try:
        login(page, site, "watcher", site.page("/quarantine?status=all"))
        # The viewer is offered no form, but its page carries its form token (meta csrf-token).
        token = page.locator("meta[name=csrf-token]").get_attribute("content")
        nonce = next(c["value"] for c in context.cookies() if c["name"] == CSRF_COOKIE)
        secret = site.secrets["secret_key"].encode()
        assert token == Csrf(secret).token(nonce, Reviewer("watcher", "watcher")), "a valid token"
        row_id = _an_open_row(site)
        before = _state(site)
        for path, form in [
            (f"/quarantine/{row_id}", {"action": "dismiss", "note": "viewer"}),
            (f"/quarantine/{row_id}", {"action": "resolve"}),
            (f"/quarantine/{row_id}", {"action": "reopen"}),
            ("/mapping", {"organization_id": str(UNMAPPED_ORG), "company_id": str(INTENDED_COMPANY)}),
            (f"/mapping/{UNMAPPED_ORG}/delete", {}),
        ]:
            refused = context.request.post(
                site.page(path),
                form={**form, "csrf_token": token},
                headers={"Origin": site.url, "Sec-Fetch-Site": "same-origin"},
                max_redirects=0,
            )
            assert refused.status == 403, (path, refused.status)
            area = "Mappings" if path.startswith("/mapping") else "Quarantine"
            said = f"This needs the {area} power on tenant default; ask an administrator"
            assert refused.json()["detail"] == said, (path, refused.text())
        assert _state(site) == before
    finally:
        context.close()


# The server's refusals name the power missing on the tenant (issue 21 §3; the single-tenant form's).
MAPPINGS_REFUSED = "This needs the Mappings power on tenant default; ask an administrator"
APPLY_REFUSED = "This needs the Apply power on tenant default; ask an administrator"


def test_who_may_map_user_decides_rows_op_maps_named_roles_override(browser, site: Site) -> None:
    """SimpleAuthManager's USER may act on the DAG's runs: it decides rows, but by default it may not
    change who is billed, which takes the right to edit the DAG and its Variable (OP). Once the
    Variable's mapping_roles names roles, membership decides: USER maps when USER is named, and is
    refused again when only ADMIN is."""
    from playwright.sync_api import expect

    admin = {"Authorization": f"Bearer {site.token('reviewer')}"}

    def mapped_by() -> tuple[str, str] | None:
        rows = {r["huntress_organization_id"]: r for r in store.list_org_map(site.engine, tenant="default")}
        row = rows.get(UNMAPPED_ORG)
        return None if row is None else (row["created_by"], row["created_by_id"])

    def map_in_browser(page: Any) -> None:
        page.goto(site.page("/mapping"))
        row = page.locator(f"#org-{UNMAPPED_ORG}")
        row.get_by_label(f"Company id for organization {UNMAPPED_ORG}").fill(str(INTENDED_COMPANY))
        row.get_by_role("button", name="Map").click()

    def offered_no_mapping(page: Any) -> None:
        page.goto(site.page("/mapping"))
        expect(page.get_by_test_id("read-only")).to_be_visible()
        expect(page.locator(f"#org-{UNMAPPED_ORG}")).to_be_visible()
        expect(page.locator(f"#org-{UNMAPPED_ORG}").get_by_role("button")).to_have_count(0)

    def map_by_post(page: Any) -> Any:
        """The mapping form posted anyway, with the user's own token from the page it is on."""
        token = page.locator("meta[name=csrf-token]").get_attribute("content")
        form = {
            "organization_id": str(UNMAPPED_ORG),
            "company_id": str(INTENDED_COMPANY),
            "csrf_token": token,
        }
        return page.context.request.post(
            site.page("/mapping"),
            form=form,
            headers={"Origin": site.url, "Sec-Fetch-Site": "same-origin"},
            max_redirects=0,
        )

    def unmap(page: Any) -> None:
        page.locator(f"#org-{UNMAPPED_ORG}").get_by_role("button", name="Remove").click()
        expect(page.get_by_role("status")).to_contain_text(f"Mapping of organization {UNMAPPED_ORG} removed")

    def name_mapping_roles(roles: list[str]) -> None:
        httpx.delete(f"{site.url}/api/v2/variables/{CONFIG_VARIABLE}", headers=admin)
        made = httpx.post(
            f"{site.url}/api/v2/variables",
            json={"key": CONFIG_VARIABLE, "value": json.dumps({"mapping_roles": roles})},
            headers=admin,
        )
        assert made.status_code == 201, made.text

    clerk_context, op_context = browser.new_context(), browser.new_context()
    clerk, operator = clerk_context.new_page(), op_context.new_page()
    try:
        row_id = _an_open_row(site)
        login(clerk, site, "clerk", site.page(f"/quarantine/{row_id}"))
        clerk.get_by_label(f"Note for row {row_id}").fill("clerk checked")
        clerk.get_by_role("button", name="Dismiss").click()
        expect(clerk.get_by_role("status")).to_contain_text(f"Row {row_id} dismissed: ")
        saved = store.get_quarantine(site.engine, row_id, tenant="default")
        assert (saved["status"], saved["resolved_by"], saved["resolved_by_id"]) == (
            "dismissed",
            "clerk",
            "clerk",
        )
        clerk.get_by_role("button", name="Reopen").click()
        expect(clerk.get_by_role("status")).to_contain_text(f"Row {row_id} reopened: ")

        offered_no_mapping(clerk)  # the default: USER may not change who is billed, nor is offered it
        screenshot(clerk, "mapping-not-offered-to-user")
        refused = map_by_post(clerk)
        assert refused.status == 403 and refused.json()["detail"] == MAPPINGS_REFUSED
        assert mapped_by() is None

        login(operator, site, "operator", site.page("/mapping"))
        map_in_browser(operator)
        expect(operator.get_by_role("status")).to_contain_text(f"Organization {UNMAPPED_ORG} mapped: ")
        assert mapped_by() == ("operator", "operator")
        unmap(operator)

        name_mapping_roles(["USER"])  # the operator names USER: the clerk maps
        map_in_browser(clerk)
        expect(clerk.get_by_role("status")).to_contain_text(f"Organization {UNMAPPED_ORG} mapped: ")
        assert mapped_by() == ("clerk", "clerk")
        unmap(clerk)

        name_mapping_roles(["ADMIN"])  # ADMIN only: USER and OP are refused, rows still decided
        for page in (clerk, operator):
            offered_no_mapping(page)
            refused = map_by_post(page)
            assert refused.status == 403 and refused.json()["detail"] == MAPPINGS_REFUSED
        assert mapped_by() is None
        clerk.goto(site.page(f"/quarantine/{row_id}"))
        clerk.get_by_role("button", name="Mark resolved").click()
        expect(clerk.get_by_role("status")).to_contain_text(f"Row {row_id} marked resolved: ")
        clerk.get_by_role("button", name="Reopen").click()
        expect(clerk.get_by_role("status")).to_contain_text(f"Row {row_id} reopened: ")

        with httpx.Client(headers=admin) as client:  # ADMIN is named: the admin maps
            form = {"organization_id": str(UNMAPPED_ORG), "company_id": str(INTENDED_COMPANY)}
            token = _form_token(client, site)
            done = client.post(site.page("/mapping"), data={**form, "csrf_token": token})
            assert done.status_code == 303 and "done=mapped" in done.headers["location"]
            client.post(site.page(f"/mapping/{UNMAPPED_ORG}/delete"), data={"csrf_token": token})
        assert mapped_by() is None
    finally:
        httpx.delete(f"{site.url}/api/v2/variables/{CONFIG_VARIABLE}", headers=admin)
        clerk_context.close()
        op_context.close()


def _resigned(site: Site, token: str, expires_in_s: int) -> str:
    """The server's own token with its expiry moved, signed with the server's own JWT secret."""
    import jwt

    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now + expires_in_s)
    extra = {k: v for k, v in header.items() if k not in ("alg", "typ")}
    return jwt.encode(claims, site.secrets["jwt_secret"], algorithm=header["alg"], headers=extra or None)


def test_expired_token_is_refused(site: Site) -> None:
    token = site.token("reviewer")
    row_id = _an_open_row(site)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as client:
        form_token = _form_token(client, site)
        cookies = dict(client.cookies)
    alive, expired = _resigned(site, token, 3600), _resigned(site, token, -3600)
    assert (
        httpx.get(site.page("/quarantine"), headers={"Authorization": f"Bearer {alive}"}).status_code == 200
    )
    before = _state(site)
    for auth in [{"headers": {"Authorization": f"Bearer {expired}"}}, {"cookies": {"_token": expired}}]:
        jar = {**cookies, **auth.get("cookies", {})}
        with httpx.Client(headers=auth.get("headers"), cookies=jar) as client:
            assert client.get(site.page("/quarantine")).status_code == 401
            posted = client.post(
                site.page(f"/quarantine/{row_id}"), data={"action": "resolve", "csrf_token": form_token}
            )
            assert posted.status_code == 401, posted.text
            assert posted.json()["detail"] == "Token Expired"
    assert _state(site) == before


def test_revoked_token_is_refused(site: Site) -> None:
    """Airflow 3 revokes a token at logout (its jti goes to the metadata DB's revoked_token table)."""
    row_id = _an_open_row(site)
    before = _state(site)
    for via in ("bearer", "cookie"):
        token = site.token("reviewer")
        bearer = {"Authorization": f"Bearer {token}"}
        with httpx.Client(headers=bearer) as client:
            form_token = _form_token(client, site)
            cookies = dict(client.cookies)
            out = client.get(f"{site.url}/api/v2/auth/logout", follow_redirects=False)
            assert out.status_code in (302, 303, 307), out.text
        auth = {"headers": bearer} if via == "bearer" else {"cookies": {**cookies, "_token": token}}
        with httpx.Client(headers=auth.get("headers"), cookies=auth.get("cookies", cookies)) as client:
            assert client.get(site.page("/quarantine")).status_code == 403, via
            posted = client.post(
                site.page(f"/quarantine/{row_id}"), data={"action": "resolve", "csrf_token": form_token}
            )
            assert posted.status_code == 403, (via, posted.text)
            assert posted.json()["detail"] == "Invalid JWT token", via
    assert _state(site) == before


def test_origin_and_fetch_metadata_checks_each_refuse_on_their_own(site: Site) -> None:
    """A valid user, token and cookie; each header check alone turns the POST away, and with both
    headers right the same POST passes them (answered by the form's own message, nothing written)."""
    row_id = _an_open_row(site)
    same_origin = {"Origin": site.url, "Sec-Fetch-Site": "same-origin"}
    with httpx.Client(headers={"Authorization": f"Bearer {site.token('reviewer')}"}) as client:
        form = {
            "action": "dismiss",
            "note": "",
            "csrf_token": _form_token(client, site),
        }  # no note: refused by the form
        before = _state(site)
        for headers, detail in [
            ({**same_origin, "Origin": "http://evil.example"}, "Cross-origin form submission refused"),
            ({**same_origin, "Origin": "null"}, "Cross-origin form submission refused"),
            ({**same_origin, "Sec-Fetch-Site": "cross-site"}, "Cross-site form submission refused"),
            ({**same_origin, "Sec-Fetch-Site": "same-site"}, "Cross-site form submission refused"),
        ]:
            refused = client.post(site.page(f"/quarantine/{row_id}"), data=form, headers=headers)
            assert (refused.status_code, refused.json()["detail"]) == (403, detail), headers
        passed = client.post(site.page(f"/quarantine/{row_id}"), data=form, headers=same_origin)
        assert passed.status_code == 303 and "error=note_required" in passed.headers["location"]
        assert _state(site) == before


# --- issue 11 §3: map from the queue, and the re-run button through Airflow's own REST API ----------


def _dag_runs(site: Site, **params: str) -> list[dict]:
    admin = {"Authorization": f"Bearer {site.token('reviewer')}"}
    listed = httpx.get(
        f"{site.url}/api/v2/dags/huntress_connectwise_billing_sync/dagRuns", params=params, headers=admin
    )
    assert listed.status_code == 200, listed.text
    return listed.json()["dag_runs"]


def test_user_reruns_a_billing_date_through_airflow_and_a_viewer_is_refused(browser, site: Site) -> None:
    """The clerk (USER) clicks Re-run: Airflow's REST API creates a DAG run of that billing date,
    triggered by the clerk. The watcher (VIEWER) is not offered the button, and posting its form
    anyway is refused by the server: it lacks the Apply power (PUT on the DAG's runs by default)."""
    from playwright.sync_api import expect

    day = _newest_run(site)["billing_date"].isoformat()
    before = {r["dag_run_id"] for r in _dag_runs(site)}
    clerk_context, watcher_context = browser.new_context(), browser.new_context()
    clerk, watcher = clerk_context.new_page(), watcher_context.new_page()
    try:
        login(clerk, site, "clerk", site.page("/quarantine"))
        clerk.get_by_test_id("rerun-bar").get_by_role("button", name=f"Re-run billing date {day}").click()
        notice = clerk.get_by_test_id("rerun-notice")
        expect(notice).to_contain_text(f"triggered for billing date {day}")
        screenshot(clerk, "quarantine-rerun")
        href = notice.get_by_role("link", name="Open the DAG run").get_attribute("href")
        run_id = href.rsplit("/", 1)[1]
        assert re.fullmatch(rf"desk__{day}__\d{{8}}T\d{{6}}Z", run_id), href

        [run] = [r for r in _dag_runs(site) if r["dag_run_id"] not in before]
        assert run["dag_run_id"] == run_id
        assert run["logical_date"].startswith(f"{day}T"), "the billing date is the logical date's UTC date"
        assert run["triggering_user_name"] == "clerk", "Airflow recorded who triggered it"
        assert run["run_type"] == "manual" and run["conf"] == {}
        assert run["note"] == f"Billing review: re-run of billing date {day}"

        login(watcher, site, "watcher", site.page("/quarantine"))
        expect(watcher.get_by_test_id("read-only")).to_be_visible()
        expect(watcher.get_by_test_id("rerun-bar")).to_have_count(0)
        refused = watcher_context.request.post(
            site.page("/rerun"),
            form={
                "billing_date": day,
                "back": "mapping",
                "csrf_token": watcher.locator("meta[name=csrf-token]").get_attribute("content"),
            },
            headers={"Origin": site.url, "Sec-Fetch-Site": "same-origin"},
            max_redirects=0,
        )
        assert (refused.status, refused.json()["detail"]) == (403, APPLY_REFUSED), refused.text()
        assert {r["dag_run_id"] for r in _dag_runs(site)} == before | {run_id}, "no run for the viewer"
    finally:
        clerk_context.close()
        watcher_context.close()


def test_map_from_the_queue_with_the_type_ahead(page, site: Site) -> None:
    """In the quarantine, type part of a company's name: the matches come while typing (the picker's
    script runs under the pages' strict CSP), one click maps the organization."""
    from playwright.sync_api import expect

    from billing_sync.review.queries.companies import staged_companies

    _, companies = staged_companies(site.engine, tenant="default")
    name = next(c["name"] for c in companies if c["id"] == INTENDED_COMPANY)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(site.page("/quarantine?reason_code=unmapped_organization"))
        head = page.locator(f"#group-organization-{UNMAPPED_ORG}")
        search = head.get_by_label(f"Find a company for organization {UNMAPPED_ORG}")
        expect(search).to_have_attribute("data-picker-ready", "")  # the script ran
        search.press_sequentially(name[:6], delay=30)
        choice = head.get_by_role(
            "button", name=f"Map to this company: {name} #{INTENDED_COMPANY}", exact=True
        )
        expect(choice).to_be_visible()
        assert "pick=" not in page.url, "the matches came without leaving the page"
        screenshot(page, "quarantine-type-ahead")
        choice.click()
        expect(page.get_by_role("status")).to_contain_text(f"Organization {UNMAPPED_ORG} mapped: ")
        assert "reason_code=unmapped_organization" in page.url, "back to the queue, filters kept"
        expect(page.get_by_test_id(f"now-matched-{UNMAPPED_ORG}")).to_contain_text(f"#{INTENDED_COMPANY}")
        mapped = {
            r["huntress_organization_id"]: r for r in store.list_org_map(site.engine, tenant="default")
        }[UNMAPPED_ORG]
        assert (mapped["cw_company_id"], mapped["created_by"]) == (INTENDED_COMPANY, "reviewer")
        assert refused == []
    finally:
        store.delete_org_map(site.engine, UNMAPPED_ORG, tenant="default")
