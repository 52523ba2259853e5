"""The review app's routes with FastAPI's TestClient: a billing DB filled through store.py, and
auth replaced by a header (`X-User`, `X-Role: editor`) so each rule can be tested in milliseconds.
The real auth, server and browser are in test_browser.py. The app and its DB: tests/helpers/review_app.py,
the `app` fixture in tests/ui/conftest.py."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest

from billing_sync import store
from billing_sync.review.security import CSRF_COOKIE
from tests.helpers.review_app import ALICE, EVIL, RUN, App


def test_pages_render_escaped_with_csp(app: App) -> None:
    for path in ["/quarantine", "/quarantine/1", "/runs", f"/runs/{quote(RUN, safe='')}", "/mapping"]:
        page = app.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text, path
        assert "script-src 'nonce-" in page.headers["content-security-policy"]
        assert "frame-ancestors 'self'" in page.headers["content-security-policy"]
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in app.get("/quarantine").text


def test_anonymous_is_refused_and_browsers_sent_to_login(app: App) -> None:
    assert app.get("/quarantine", headers={}).status_code == 401
    page = app.get("/runs", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=" + quote("http://testserver/billing-review/runs")
    assert app.client.post("/billing-review/quarantine/1", data={"action": "dismiss"}).status_code == 401


def test_quarantine_filters(app: App) -> None:
    assert app.get("/quarantine").text.count("data-row-id=") == 2
    assert app.get("/quarantine?reason_code=change_exceeds_limit").text.count("data-row-id=") == 1
    assert app.get("/quarantine?company_id=10").text.count("data-row-id=") == 1
    assert app.get("/quarantine?billing_date=2026-10-01").text.count("data-row-id=") == 0
    assert app.get("/quarantine?status=dismissed").text.count("data-row-id=") == 0
    assert app.get(f"/quarantine?run_id={quote(RUN)}&status=all").text.count("data-row-id=") == 2
    assert app.get("/quarantine?billing_date=yesterday").status_code == 400
    assert app.get("/quarantine?status=deleted").status_code == 400


def test_dismiss_needs_a_note_and_records_the_user(app: App) -> None:
    refused = app.post("/quarantine/1", {"action": "dismiss", "back": "status=open"})
    # Back to the row's card (organization 2's group), where the person was (issue 20 §3).
    assert refused.headers["location"].endswith("error=note_required&id=1#group-organization-2")
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"

    done = app.post(
        "/quarantine/1", {"action": "dismiss", "note": "known", "back": "status=open&reason_code=x"}
    )
    assert done.status_code == 303
    assert (
        done.headers["location"]
        == "/billing-review/quarantine?status=open&reason_code=x&done=dismissed&id=1#group-organization-2"
    )
    row = store.get_quarantine(app.engine, 1, tenant="default")
    assert (row["status"], row["resolved_by"], row["note"]) == ("dismissed", "alice", "known")
    assert "Row 1 dismissed: " in app.get("/quarantine?done=dismissed&id=1").text  # + whom (test_plain_words)

    app.post("/quarantine/1", {"action": "reopen", "back": "row"})
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"
    app.post("/quarantine/2", {"action": "resolve"})
    assert store.get_quarantine(app.engine, 2, tenant="default")["resolved_by"] == "alice"


def test_redirect_stays_inside_the_app(app: App) -> None:
    done = app.post("/quarantine/1", {"action": "resolve", "back": "https://evil.example/"})
    assert done.headers["location"].startswith("/billing-review/quarantine?")
    assert app.post("/quarantine/1", {"action": "resolve", "back": "status=nope"}).status_code == 400


def test_viewer_cannot_act(app: App) -> None:
    viewer = {"X-User": "bob"}
    assert app.get("/quarantine", headers=viewer).status_code == 200
    assert app.post("/quarantine/1", {"action": "resolve"}, headers=viewer).status_code == 403
    assert (
        app.post("/mapping", {"organization_id": "2", "company_id": "10"}, headers=viewer).status_code == 403
    )


def test_csrf(app: App) -> None:
    assert app.post("/quarantine/1", {"action": "resolve"}, token=False).status_code == 403
    assert (
        app.post("/quarantine/1", {"action": "resolve", "csrf_token": "0" * 64}, token=False).status_code
        == 403
    )
    # A token is bound to its user: bob's own token does not work in alice's session.
    bobs = app.token({"X-User": "bob", "X-Role": "editor"})
    assert (
        app.post("/quarantine/1", {"action": "resolve", "csrf_token": bobs}, token=False).status_code == 403
    )
    # ...and to this browser's nonce cookie.
    token = app.token(ALICE)
    app.client.cookies.set(CSRF_COOKIE, "n" * 43, path="/billing-review")
    assert (
        app.post("/quarantine/1", {"action": "resolve", "csrf_token": token}, token=False).status_code == 403
    )
    cross = {**ALICE, "Sec-Fetch-Site": "cross-site"}
    assert app.post("/quarantine/1", {"action": "resolve"}, headers=cross).status_code == 403
    other = {**ALICE, "Origin": "https://evil.example"}
    assert app.post("/quarantine/1", {"action": "resolve"}, headers=other).status_code == 403
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"
    same = {**ALICE, "Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}
    assert app.post("/quarantine/1", {"action": "resolve"}, headers=same).status_code == 303


def test_mapping_page_orders_problems_first(app: App) -> None:
    html = app.get("/mapping").text
    statuses = re.findall(r'data-status="(\w+)"', html)
    assert statuses == ["ambiguous", "unmapped", "matched"]
    assert 'id="org-3"' in html and "Twin #20" in html and "twin #21" in html


def test_mapping_takes_a_company_by_name(app: App) -> None:
    """Issue 20 §3: the mapping page's company field takes a name or "Name #id" (its datalist's
    values), resolved against the newest run; a name with letters past ASCII is no 400."""
    for typed, company in [("acme corp", 10), (f"Co {EVIL} #30", 30), ("Acme Corp #10", 10)]:
        done = app.post("/mapping", {"organization_id": "2", "company_id": typed})
        assert "done=mapped" in done.headers["location"], typed
        assert store.list_org_map(app.engine, tenant="default")[0]["cw_company_id"] == company, typed
    refused = app.post("/mapping", {"organization_id": "2", "company_id": "Café Müller"})
    assert refused.status_code == 303 and "error=unknown_company" in refused.headers["location"]
    assert 'value="Acme Corp #10"' in app.get("/mapping").text


def test_mapping_add_change_remove(app: App) -> None:
    for company, error in [
        ("99", "unknown_company"),
        ("abc", "unknown_company"),
        ("twin", "unknown_company"),
    ]:
        refused = app.post("/mapping", {"organization_id": "2", "company_id": company})
        assert f"error={error}" in refused.headers["location"]
    assert (
        "error=unknown_organization"
        in app.post("/mapping", {"organization_id": "9", "company_id": "10"}).headers["location"]
    )
    assert store.list_org_map(app.engine, tenant="default") == []

    done = app.post("/mapping", {"organization_id": "2", "company_id": "10", "note": "same customer"})
    assert done.headers["location"] == "/billing-review/mapping?done=mapped&id=2&undo_to=10#org-2"
    [row] = store.list_org_map(app.engine, tenant="default")
    assert (row["huntress_organization_id"], row["cw_company_id"], row["created_by"]) == (2, 10, "alice")
    html = app.get("/mapping").text
    assert re.search(r'id="org-2"[^>]*data-status="matched"', html)

    app.post("/mapping", {"organization_id": "2", "company_id": "30"})
    assert store.list_org_map(app.engine, tenant="default")[0]["cw_company_id"] == 30
    assert "error=no_mapping" in app.post("/mapping/3/delete", {}).headers["location"]
    assert "done=unmapped" in app.post("/mapping/2/delete", {}).headers["location"]
    assert store.list_org_map(app.engine, tenant="default") == []


def test_stale_mapping_listed_for_removal(app: App) -> None:
    store.set_org_map(app.engine, 777, 10, None, "carol", tenant="default")
    html = app.get("/mapping").text
    assert 'id="org-777"' in html and "/billing-review/mapping/777/delete" in html


def test_report_files(app: App) -> None:
    run = f"/runs/{quote(RUN, safe='')}"
    html = app.get(run).text
    listed = re.findall(r'/files/([^"]+)"', html)
    assert listed == ["report.html", "outcomes.csv"], (
        "report first; no dot-files, symlink escapes or other types"
    )
    report = app.get(f"{run}/files/report.html")
    assert report.status_code == 200 and report.text == "<h1>Report</h1>"
    assert report.headers["content-security-policy"].startswith("sandbox")
    assert app.get(f"{run}/files/outcomes.csv").headers["content-type"].startswith("text/csv")
    assert app.get(f"{run}/files/report.html", headers={}).status_code == 401


@pytest.mark.parametrize(
    "name",
    [
        "..%2F..%2Fsecret.txt",
        "%2e%2e%2f%2e%2e%2fsecret.txt",
        "%2E%2E",
        ".hidden.csv",
        "escape.txt",
        "binary.exe",
        "..%5C..%5Csecret.txt",
        "missing.csv",
    ],
)
def test_report_files_refuse_escapes(app: App, name: str) -> None:
    response = app.get(f"/runs/{quote(RUN, safe='')}/files/{name}")
    assert response.status_code == 404
    assert "outside the reports root" not in response.text


def test_report_dir_outside_root_is_not_served(app: App, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "report.html").write_text("not ours")
    store.finish_run(app.engine, RUN, "success", {"total": 0}, None, str(elsewhere), tenant="default")
    assert "missing or outside" in app.get(f"/runs/{quote(RUN, safe='')}").text
    assert app.get(f"/runs/{quote(RUN, safe='')}/files/report.html").status_code == 404


def test_unknown_run_and_row(app: App) -> None:
    assert app.get("/runs/nope").status_code == 404
    assert app.get("/quarantine/999").status_code == 404
    assert "error=not_found" in app.post("/quarantine/999", {"action": "resolve"}).headers["location"]


def test_quarantine_paging_keeps_filters(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from billing_sync.review import app as review_app

    monkeypatch.setattr(review_app, "PAGE_SIZE", 1)
    first = app.get("/quarantine?status=all")
    assert "page 1 of 2" in first.text and first.text.count("data-row-id=") == 1
    older = re.search(r'href="([^"]+)">Older', first.text).group(1).replace("&amp;", "&")
    assert "status=all" in older and "page=2" in older
    second = app.client.get(older, headers=ALICE)
    assert "page 2 of 2" in second.text and second.text.count("data-row-id=") == 1


def test_alert_report_link_leads_to_the_report(app: App) -> None:
    """The "report page" URL every alert carries (runtime.report_page_url) must resolve."""
    from urllib.parse import urlsplit

    from billing_sync import runtime

    path = urlsplit(runtime.report_page_url(RUN, "default")).path.removeprefix("/billing-review")
    response = app.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].endswith(f"/runs/{quote(RUN, safe='')}/files/report.html")
    (app.report_dir / "report.html").unlink()
    assert app.get(path, follow_redirects=False).headers["location"].endswith(f"/runs/{quote(RUN, safe='')}")
    assert app.get("/runs/nope/report", follow_redirects=False).status_code == 404
    assert app.get(path, headers={}, follow_redirects=False).status_code == 401
