"""Issue 12 §1 at the level of the review app: the pages have a tenant switcher and never mix
tenants' rows, and a user's rights follow that tenant's DAG (docs/contract.md §1 Tenants).

A tenants file names `north` and `south`; the billing DB holds both tenants' rows under the SAME run
id (every tenant's DAG has the same run ids), plus the runs of `gone`, a tenant no longer in the
file. The same organization id (1) and company id (10) appear in both tenants, as two Huntress
accounts and two ConnectWise sites may well number them.

Auth is replaced by headers naming the DAGs a user may read (``X-Read``), act on (``X-Act``) and
map on (``X-Map``), decided per the page's tenant (`deps.current_tenant`). SimpleAuthManager
cannot give a user rights on one DAG and not another (its answer depends on the role and the DAG's
team only), so the real `security.airflow_auth` is tested at its seam: `AirflowRights` with an auth
manager whose `is_authorized_dag` answers per DAG id.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from fastapi import HTTPException, Request

from billing_sync import charts, store, tenants
from billing_sync.review import airflow_runs
from billing_sync.review.security import AirflowRights, ReviewAuth, airflow_auth
from tests.helpers.approvals_db import seen_fields
from tests.helpers.review_app import App
from tests.helpers.two_tenants import (
    BOTH,
    COMPANY,
    DAG,
    DAY,
    EVERY_DAG,
    GONE_DAG,
    NORTH_DAG,
    NORTH_ONLY,
    ORG,
    RUN,
    SOUTH_DAG,
    TENANTS,
    PerDagAuthManager,
    Site,
    editor,
    make_site,
    mapper,
    reader,
)


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    yield from make_site(tmp_path, monkeypatch, ReviewAuth(reader=reader, editor=editor, mapper=mapper))


def names(html: str) -> set[str]:
    """Which tenants a page shows: by their organization and company names, or their invoice."""
    return {t for t, f in TENANTS.items() if f.name in html or f">{f.invoice}<" in html}


# --- the switcher --------------------------------------------------------------------------------------


def test_the_switcher_lists_every_tenant_and_the_header_names_the_chosen_one(site: Site) -> None:
    html = site.page("/quarantine?tenant=south")
    switcher = html[
        html.index('data-testid="tenant-switcher"') : html.index("</form>", html.index("tenant-switcher"))
    ]
    assert re.findall(r'<option value="(\w+)"', switcher) == ["north", "south", "gone"]
    assert '<option value="south" selected>' in switcher and "gone (history)" in switcher
    assert 'action="/billing-review/quarantine"' in html  # a GET form: the select gives the tenant
    assert re.search(r'data-testid="tenant">south<', html)
    # Without the parameter: `default` is no tenant here, so the first configured one.
    assert re.search(r'data-testid="tenant">north<', site.page("/quarantine"))
    # The switcher lands on the list of the page's section.
    assert 'action="/billing-review/runs" data-testid="tenant-switcher"' in site.page(
        f"/runs/{quote(RUN, safe='')}?tenant=south"
    )


def test_without_the_tenants_file_the_default_comes_first_and_the_others_stay_readable(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(tenants.TENANTS_FILE_ENV)
    store.start_run(site.engine, RUN, DAY, 7000, "push", {}, tenant="default")
    everyone = {**BOTH, "X-Read": f"{DAG},{EVERY_DAG}"}
    html = site.page("/runs", everyone)
    assert ">7000<" in html and not names(html)
    assert re.findall(r'<option value="(\w+)"', html) == ["default", "gone", "north", "south"]
    assert names(site.page("/runs?tenant=north", everyone)) == {"north"}
    assert "(history, read only)" in site.page("/runs?tenant=north", everyone)


def test_the_single_tenant_form_has_no_switcher_and_its_links_no_tenant(app: App) -> None:
    for path in ("/quarantine", "/runs", "/mapping", "/approvals", "/overrides"):
        html = app.get(path).text
        assert 'data-testid="tenant-switcher"' not in html and 'data-testid="tenant"' not in html, path
        assert "tenant=" not in html, path


def test_an_unknown_or_malformed_tenant_is_a_404_naming_no_other(site: Site) -> None:
    for wanted in ("west", "NORTH", "no-rth", "x" * 500, "<script>"):
        refused = site.get(f"/quarantine?tenant={quote(wanted)}")
        assert refused.status_code == 404, wanted
        detail = refused.json()["detail"]
        assert "tenant" in detail and "north" not in detail and "<script>" not in detail, detail
    assert site.get("/quarantine?tenant=west").json()["detail"] == (
        "No tenant 'west': it is neither in the tenants file nor in the billing runs"
    )
    browser = site.get("/runs?tenant=west", headers={**BOTH, "Accept": "text/html"})
    assert browser.status_code == 404 and "No tenant" in browser.text


# --- each page shows one tenant's rows -----------------------------------------------------------------


@pytest.mark.parametrize("tenant", ["north", "south"])
def test_each_page_shows_only_the_chosen_tenants_rows(site: Site, tenant: str) -> None:
    q = f"tenant={tenant}"
    run = quote(RUN, safe="")
    pages = [
        f"/quarantine?{q}",
        f"/quarantine?{q}&view=rows",
        f"/quarantine?{q}&status=all&run_id={quote(RUN)}",
        f"/quarantine/{site.ids[tenant]['unmapped_organization']}?{q}",
        f"/runs?{q}",
        f"/runs/{run}?{q}",
        f"/mapping?{q}",
        f"/mapping/companies?{q}&q=corp",
        f"/overrides?{q}",
        f"/approvals?{q}",
        f"/approvals?{q}&status=all",
        f"/approvals/new?row={site.ids[tenant]['change_exceeds_limit']}&{q}",
    ]
    for path in pages:
        assert names(site.page(path)) == {tenant}, path
    runs = site.page(f"/runs?{q}")
    assert runs.count(f'href="/billing-review/runs/{run}?{q}"') == 1
    assert str(TENANTS[tenant].invoice) in site.page(f"/runs/{run}?{q}")
    # The report link of the alerts lands on the tenant's own report of the shared run id.
    report = site.get(f"/runs/{run}/report?{q}", follow_redirects=False)
    assert report.headers["location"] == f"/billing-review/runs/{run}/files/report.html?{q}"
    assert names(site.page(report.headers["location"].removeprefix("/billing-review"))) == {tenant}


def test_the_csv_export_is_the_tenants(site: Site) -> None:
    for tenant in TENANTS:
        got = site.get(f"/quarantine/export.csv?tenant={tenant}&status=all")
        rows = list(csv.DictReader(io.StringIO(got.text)))
        held = (site.ids[tenant]["unmapped_organization"], site.ids[tenant]["change_exceeds_limit"])
        assert {r["id"] for r in rows} == {str(i) for i in held}
        assert names(got.text) == {tenant}
        assert f'filename="billing-quarantine-{tenant}-all-' in got.headers["content-disposition"]
    assert 'href="/billing-review/quarantine/export.csv?tenant=south' in site.page("/quarantine?tenant=south")


def test_the_charts_draw_the_tenants_runs(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[list[dict[str, Any]]] = []
    monkeypatch.setattr(charts, "history_chart", lambda rows, cache=None: drawn.append(list(rows)))
    monkeypatch.setattr(charts, "run_chart", lambda rows, cache=None: drawn.append(list(rows)))
    for tenant, f in TENANTS.items():
        drawn.clear()
        site.page(f"/runs?tenant={tenant}")
        site.page(f"/runs/{quote(RUN, safe='')}?tenant={tenant}")
        assert [[r["huntress"] for r in rows] for rows in drawn] == [[f.huntress], [f.huntress]], tenant
    # A caller that mixes tenants gets no chart, never a sum of both.
    mixed = [store.get_run(site.engine, RUN, tenant=t) for t in TENANTS]
    with pytest.raises(charts.ChartError, match="several tenants"):
        charts.history_rows(mixed)


def test_links_and_forms_keep_the_tenant(site: Site) -> None:
    for path in ("/quarantine", "/quarantine?view=rows", "/mapping", "/approvals", "/overrides", "/runs"):
        html = site.page(f"{path}{'&' if '?' in path else '?'}tenant=south")
        # The switcher's form names the tenant with its select; every other link and form keeps it.
        switcher = re.search(r'<form [^>]*data-testid="tenant-switcher">.*?</form>', html, re.S)
        assert switcher and 'select name="tenant"' in switcher.group(0), path
        rest = html.replace(switcher.group(0), "")
        targets = re.findall(r'(?:href|action|data-src|src)="(/billing-review/[^"]*)"', rest)
        assert len(targets) > 5, path
        for target in targets:
            query = parse_qs(urlsplit(target.replace("&amp;", "&")).query)
            assert query.get("tenant") == ["south"], (path, target)
        # A browser drops the query of a GET form's action: those carry the tenant as a field.
        for form in re.findall(r'<form[^>]*method="get"[^>]*>(.*?)</form>', rest, re.S):
            assert '<input type="hidden" name="tenant" value="south">' in form, path


# --- actions --------------------------------------------------------------------------------------------


def test_an_action_on_another_tenants_row_is_refused(site: Site) -> None:
    north = site.ids["north"]
    dismiss = {"action": "dismiss", "note": "not ours", "back": "row"}
    # Answered exactly as a row that does not exist: nothing tells south that north has one.
    theirs = site.post(f"/quarantine/{north['unmapped_organization']}?tenant=south", dismiss)
    nobodys = site.post("/quarantine/999999?tenant=south", dismiss)
    assert theirs.status_code == nobodys.status_code == 303
    assert (
        "error=not_found" in theirs.headers["location"] and "error=not_found" in nobodys.headers["location"]
    )
    assert site.get(f"/quarantine/{north['unmapped_organization']}?tenant=south").status_code == 404
    assert (
        store.get_quarantine(site.engine, north["unmapped_organization"], tenant="north")["status"] == "open"
    )

    approve = {"row_id": str(north["change_exceeds_limit"])}
    assert site.post("/approvals?tenant=south", approve).status_code == 404
    assert site.get(f"/approvals/new?row={north['change_exceeds_limit']}&tenant=south").status_code == 404
    assert site.post(f"/approvals/{north['approval']}/revoke?tenant=south", {}).status_code == 404
    assert [a["status"] for a in store.list_approvals(site.engine, tenant="north")] == ["pending"]

    retired = site.post(f"/overrides/{north['override']}/retire?tenant=south", {})
    assert "error=override_not_found" in retired.headers["location"]
    assert [o["id"] for o in store.list_overrides(site.engine, tenant="north")] == [north["override"]]

    # Organization 2 is mapped in both tenants: removing south's leaves north's.
    removed = site.post("/mapping/2/delete?tenant=south", {})
    assert "done=unmapped" in removed.headers["location"] and "tenant=south" in removed.headers["location"]
    assert [m["note"] for m in store.list_org_map(site.engine, tenant="north")] == ["Northwind mapping"]
    assert store.list_org_map(site.engine, tenant="south") == []


def test_an_action_lands_on_its_tenants_rows_and_page(site: Site) -> None:
    south = site.ids["south"]
    done = site.post(f"/quarantine/{south['unmapped_organization']}?tenant=south", {"action": "resolve"})
    assert done.headers["location"] == (  # back to the row's card (issue 20 §3)
        f"/billing-review/quarantine?tenant=south&status=open&done=resolved&id={south['unmapped_organization']}"
        "#group-organization-1"
    )
    mapped = site.post("/mapping?tenant=south", {"organization_id": str(ORG), "company_id": str(COMPANY)})
    assert "done=mapped" in mapped.headers["location"] and "tenant=south" in mapped.headers["location"]
    assert {m["huntress_organization_id"] for m in store.list_org_map(site.engine, tenant="south")} == {1, 2}
    assert {m["huntress_organization_id"] for m in store.list_org_map(site.engine, tenant="north")} == {2}

    added = site.post(
        "/overrides?tenant=south",
        {"company_id": str(COMPANY), "product": "sat", "rule": "exclude", "note": "s"},
    )
    assert "done=override_added" in added.headers["location"] and "tenant=south" in added.headers["location"]
    assert len(store.list_overrides(site.engine, tenant="south")) == 2
    assert len(store.list_overrides(site.engine, tenant="north")) == 1

    held = south["change_exceeds_limit"]
    shown = seen_fields(site.client, held, BOTH, "south")  # what the form showed
    approved = site.post("/approvals?tenant=south", {"row_id": str(held), **shown})
    assert (
        "approval=approved" in approved.headers["location"] and "tenant=south" in approved.headers["location"]
    )
    assert len(store.list_approvals(site.engine, tenant="south", status="pending")) == 2
    assert len(store.list_approvals(site.engine, tenant="north", status="pending")) == 1


def test_a_rerun_triggers_the_tenants_dag(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    triggered: list[str] = []

    def trigger(base: str, token: str, day: Any, now: Any = None, *, dag_id: str) -> airflow_runs.Triggered:
        triggered.append(dag_id)
        return airflow_runs.Triggered("desk__2026-12-01__20261202T101500Z", "2026-12-01T10:15:00Z", False)

    monkeypatch.setattr(airflow_runs, "trigger_billing_run", trigger)
    bearer = {**BOTH, "Authorization": "Bearer t"}
    done = site.post("/rerun?tenant=south", {"billing_date": "2026-11-01", "back": "mapping"}, bearer)
    assert triggered == [SOUTH_DAG]
    location = done.headers["location"]
    assert location.startswith("/billing-review/mapping?tenant=south&rerun=queued")
    notice = site.page(location.removeprefix("/billing-review"))
    assert f'href="/dags/{SOUTH_DAG}/runs/desk__2026-12-01__20261202T101500Z"' in notice

    held = site.ids["north"]["change_exceeds_limit"]
    approve = {"row_id": str(held), "rerun": "1", **seen_fields(site.client, held, BOTH, "north")}
    assert (
        "approval=approved_rerun" in site.post("/approvals?tenant=north", approve, bearer).headers["location"]
    )
    assert triggered == [SOUTH_DAG, NORTH_DAG]


def test_a_former_tenants_history_is_read_only(site: Site) -> None:
    html = site.page("/runs?tenant=gone")
    assert "7003" in html and "(history, read only)" in html
    assert 'data-testid="read-only"' in site.page("/quarantine?tenant=gone")
    assert f"/dags/{GONE_DAG}/runs/" in html
    for path, form in [
        ("/mapping?tenant=gone", {"organization_id": "1", "company_id": "10"}),
        ("/rerun?tenant=gone", {"billing_date": DAY, "back": "mapping"}),
        ("/overrides?tenant=gone", {"company_id": "10", "product": "edr", "rule": "exclude"}),
    ]:
        refused = site.post(path, form)
        assert refused.status_code == 403 and "read only" in refused.json()["detail"], path


# --- rights follow the tenant's DAG ---------------------------------------------------------------------


def test_a_user_of_one_tenants_dag_is_refused_the_others_pages(site: Site) -> None:
    assert names(site.page("/quarantine?tenant=north", NORTH_ONLY)) == {"north"}
    south = site.ids["south"]
    for path in ("/quarantine", "/runs", "/mapping", "/overrides", "/approvals", "/quarantine/export.csv"):
        assert site.get(f"{path}?tenant=south", NORTH_ONLY).status_code == 403, path
    assert (
        site.get(f"/quarantine/{south['unmapped_organization']}?tenant=south", NORTH_ONLY).status_code == 403
    )
    for path, form in [
        (f"/quarantine/{south['unmapped_organization']}?tenant=south", {"action": "resolve"}),
        ("/mapping?tenant=south", {"organization_id": "1", "company_id": "10"}),
        (f"/approvals/{south['approval']}/revoke?tenant=south", {}),
        ("/rerun?tenant=south", {"billing_date": DAY}),
    ]:
        assert site.post(path, form, NORTH_ONLY).status_code == 403, path
    assert (
        store.get_quarantine(site.engine, south["unmapped_organization"], tenant="south")["status"] == "open"
    )
    # Refused on the tenant chosen for them, a browser is offered the others.
    refused = site.get("/runs?tenant=south", {**NORTH_ONLY, "Accept": "text/html"})
    assert refused.status_code == 403
    assert 'href="/billing-review/quarantine?tenant=north"' in refused.text
    # What a page offers follows the tenant too: acting on north, only reading south.
    reads_south = {**NORTH_ONLY, "X-Read": f"{NORTH_DAG},{SOUTH_DAG}"}
    assert 'data-testid="read-only"' not in site.page("/quarantine?tenant=north", reads_south)
    assert 'data-testid="read-only"' in site.page("/quarantine?tenant=south", reads_south)


@pytest.fixture
def airflow_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Site, PerDagAuthManager]]:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    for t in TENANTS:  # the tenants' settings Variables, through Airflow's environment backend
        monkeypatch.setenv(f"AIRFLOW_VAR_BILLING_{t.upper()}", "{}")
    manager = PerDagAuthManager(
        {
            # USER on north's runs, OP on south's (its DAG and its Variable too), nothing else.
            "ulla": {"GET": {NORTH_DAG, SOUTH_DAG}, "PUT": {NORTH_DAG, SOUTH_DAG, "billing_south"}},
            "nils": {"GET": {NORTH_DAG}, "PUT": {NORTH_DAG, "billing_north"}},
        }
    )
    rights = AirflowRights(manager=lambda: manager, team_of=lambda dag_id: None)

    def user(request: Request) -> SimpleAuthManagerUser:
        name = request.headers.get("x-user")
        if not name:
            raise HTTPException(401, "Not authenticated")
        return SimpleAuthManagerUser(username=name, role="user")

    for s in make_site(tmp_path, monkeypatch, airflow_auth(rights)):
        s.sub.dependency_overrides[get_user] = user
        yield s, manager


def test_airflow_rights_are_asked_about_the_tenants_dag(airflow_site: tuple[Site, PerDagAuthManager]) -> None:
    site, manager = airflow_site
    nils, ulla = {"X-User": "nils"}, {"X-User": "ulla"}
    assert names(site.page("/quarantine?tenant=north", nils)) == {"north"}
    assert site.get("/quarantine?tenant=south", nils).status_code == 403
    assert site.get("/runs?tenant=gone", nils).status_code == 403
    assert {dag for _, _, dag, _ in manager.asked} <= {NORTH_DAG, SOUTH_DAG, GONE_DAG}
    assert ("nils", "GET", SOUTH_DAG) in {a[:3] for a in manager.asked}

    north = site.ids["north"]
    act = {"action": "dismiss", "note": "known", "back": "row"}
    assert (
        site.post(f"/quarantine/{north['unmapped_organization']}?tenant=north", act, nils).status_code == 303
    )
    assert (
        site.post("/mapping?tenant=north", {"organization_id": "1", "company_id": "10"}, nils).status_code
        == 303
    )
    refused = site.post("/mapping?tenant=south", {"organization_id": "1", "company_id": "10"}, nils)
    assert (refused.status_code, refused.json()["detail"]) == (403, "Forbidden")

    # ulla may map on south (its DAG and Variable), only decide rows on north: the Variable asked is
    # the tenant's own.
    assert (
        site.post("/mapping?tenant=south", {"organization_id": "1", "company_id": "10"}, ulla).status_code
        == 303
    )
    refused = site.post("/mapping?tenant=north", {"organization_id": "1", "company_id": "10"}, ulla)
    assert (refused.status_code, refused.json()["detail"]) == (
        403,
        "This needs the Mappings power on tenant north; ask an administrator",
    )
    page = site.page("/quarantine?tenant=north", ulla)
    assert 'data-testid="read-only"' in page and "changing who is billed" in page
    assert 'data-testid="read-only"' not in site.page("/quarantine?tenant=south", ulla)


def switcher_of(html: str) -> list[str]:
    found = re.search(r'<form [^>]*data-testid="tenant-switcher">.*?</form>', html, re.S)
    return re.findall(r'<option value="(\w+)"', found.group(0)) if found else []


def test_the_switcher_and_the_403_page_name_only_the_tenants_the_user_may_read(
    airflow_site: tuple[Site, PerDagAuthManager],
) -> None:
    """Issue 19 §4: a tenant a user may not read is not even named to them."""
    site, _ = airflow_site
    nils, ulla = {"X-User": "nils"}, {"X-User": "ulla"}
    # nils reads north alone: no switcher at all, and his 403 on south offers north only.
    assert switcher_of(site.page("/quarantine?tenant=north", nils)) == []
    refused = site.get("/runs?tenant=south", {**nils, "Accept": "text/html"})
    assert refused.status_code == 403
    assert "tenant=north" in refused.text
    assert "tenant=south" not in refused.text.split("Other tenants", 1)[-1] and "gone" not in refused.text
    # ulla reads north and south, not the former tenant "gone".
    assert switcher_of(site.page("/quarantine?tenant=south", ulla)) == ["north", "south"]
    refused = site.get("/runs?tenant=gone", {**ulla, "Accept": "text/html"})
    assert refused.status_code == 403
    others = re.search(r'data-testid="other-tenants">(.*?)</p>', refused.text, re.S)
    assert others and re.findall(r"tenant=(\w+)", others.group(1)) == ["north", "south"]


def test_mapping_roles_come_from_the_tenants_variable(
    airflow_site: tuple[Site, PerDagAuthManager], monkeypatch: pytest.MonkeyPatch
) -> None:
    site, _ = airflow_site
    monkeypatch.setenv("AIRFLOW_VAR_BILLING_SOUTH", '{"mapping_roles": ["ADMIN"]}')
    ulla = {"X-User": "ulla"}  # role "user": south's mapping_roles now refuse her
    refused = site.post("/mapping?tenant=south", {"organization_id": "1", "company_id": "10"}, ulla)
    assert refused.status_code == 403 and "Mappings power on tenant south" in refused.json()["detail"]
    monkeypatch.setenv("AIRFLOW_VAR_BILLING_NORTH", '{"mapping_roles": ["user"]}')
    assert (
        site.post("/mapping?tenant=north", {"organization_id": "1", "company_id": "10"}, ulla).status_code
        == 303
    )


# --- in Chromium -----------------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_switcher_switches_in_chromium_under_the_pages_csp(site: Site, browser: Any) -> None:
    """The switcher is a plain GET form: choosing a tenant and pressing Switch lands on the same
    section for that tenant, with no script and no CSP violation."""
    from playwright.sync_api import expect

    def forward(route: Any, request: Any) -> None:
        url = urlsplit(request.url)
        got = site.client.get(f"{url.path}?{url.query}", headers=BOTH)
        headers = {
            k: v for k, v in got.headers.items() if k.lower() not in ("content-length", "content-encoding")
        }
        route.fulfill(status=got.status_code, headers=headers, body=got.content)

    context = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        tab = context.new_page()
        console: list[str] = []
        tab.on("console", lambda m: console.append(m.text))
        tab.route("http://billing.test/**", forward)
        tab.goto("http://billing.test/billing-review/mapping?tenant=north")
        expect(tab.get_by_test_id("tenant")).to_have_text("north")
        tab.get_by_label("Tenant").select_option("south")
        tab.get_by_role("button", name="Switch").click()
        tab.wait_for_url("http://billing.test/billing-review/mapping?tenant=south")
        expect(tab.get_by_test_id("tenant")).to_have_text("south")
        assert names(tab.content()) == {"south"}
        tab.get_by_role("link", name="Runs").click()
        tab.wait_for_url("http://billing.test/billing-review/runs?tenant=south")
        assert names(tab.content()) == {"south"}
        assert not [m for m in console if "Content Security Policy" in m], console
    finally:
        context.close()
