"""Issue 19 §5: every decision made on the pages is kept in the decision history, shown on a
quarantine row's page and a company's history page, and exported as CSV by any reader.

Through the real app (FastAPI's TestClient, the real store on SQLite): each action appends exactly one
entry, by the signed-in user, with the subject before and after.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from billing_sync import store
from tests.helpers.review_app import DAY, EVIL
from tests.helpers.review_roles import EDITOR, MAPPER, VIEWER, Client

HELD_ROW = 2  # company:10:sat, change_exceeds_limit (tests/helpers/review_app.fill)


def entries(roles_site: Client, tenant: str = "default") -> list[dict[str, Any]]:  # noqa: F811
    return store.list_decisions(roles_site.engine, tenant=tenant, limit=None)


def new_since(roles_site: Client, seen: list[dict[str, Any]]) -> list[dict[str, Any]]:  # noqa: F811
    known = {e["id"] for e in seen}
    return [e for e in entries(roles_site) if e["id"] not in known]


def act(roles_site: Client, path: str, data: dict[str, Any], who: dict[str, str]) -> dict[str, Any]:  # noqa: F811
    """POST the form; exactly one new entry, which is returned."""
    seen = entries(roles_site)
    assert roles_site.post(path, data, who).status_code == 303
    [entry] = new_since(roles_site, seen)
    assert (entry["tenant"], entry["at"].tzinfo is not None) == ("default", True)
    return entry


def get(roles_site: Client, path: str, who: dict[str, str] = VIEWER) -> str:  # noqa: F811
    response = roles_site.client.get(f"/billing-review{path}", headers=who)
    assert response.status_code == 200, response.text
    return response.text


def test_every_decision_on_the_pages_appends_one_entry(roles_site: Client) -> None:  # noqa: F811
    e = act(roles_site, f"/quarantine/{HELD_ROW}", {"action": "dismiss", "note": "duplicate"}, EDITOR)
    assert (e["kind"], e["actor_name"], e["actor_id"], e["note"], e["quarantine_id"]) == (
        "dismiss",
        "Erin Editor",
        "11",
        "duplicate",
        HELD_ROW,
    )
    assert (e["subject"], e["subject_id"]) == ("quarantine", str(HELD_ROW))
    assert (e["before"]["status"], e["after"]["status"], e["cw_company_id"]) == ("open", "dismissed", 10)
    e = act(
        roles_site, f"/quarantine/{HELD_ROW}", {"action": "reopen", "note": "not one", "back": "row"}, MAPPER
    )
    assert (e["kind"], e["actor_name"], e["before"]["resolved_by"], e["before"]["note"]) == (
        "reopen",
        "Max Mapper",
        "Erin Editor",
        "duplicate",
    )
    e = act(roles_site, f"/quarantine/{HELD_ROW}", {"action": "resolve"}, EDITOR)
    assert (e["kind"], e["after"]["status"]) == ("resolve", "resolved")

    e = act(
        roles_site,
        "/mapping",
        {"organization_id": "1", "company_id": "10", "note": "billing contact"},
        MAPPER,
    )
    assert (e["kind"], e["huntress_organization_id"], e["cw_company_id"], e["before"]) == ("map", 1, 10, None)
    assert (e["subject"], e["subject_id"]) == ("mapping", "1")
    e = act(roles_site, "/mapping", {"organization_id": "1", "company_id": "20"}, MAPPER)
    assert (e["before"]["cw_company_id"], e["before"]["created_by"], e["after"]["cw_company_id"]) == (
        10,
        "Max Mapper",
        20,
    )
    seen = entries(roles_site)
    bulk = {"organization_id": ["1", "3"], "company_id": "21"}
    assert roles_site.post("/mapping/bulk", bulk, MAPPER).status_code == 303  # type: ignore[arg-type]
    assert sorted((e["kind"], e["huntress_organization_id"]) for e in new_since(roles_site, seen)) == [
        ("map", 1),
        ("map", 3),
    ]
    e = act(roles_site, "/mapping/1/delete", {}, MAPPER)
    assert (e["kind"], e["actor_name"], e["before"]["cw_company_id"], e["after"]) == (
        "unmap",
        "Max Mapper",
        21,
        None,
    )

    add = {"company_id": "10", "product": "edr", "rule": "fixed", "quantity": "7", "note": "contract"}
    e = act(roles_site, "/overrides", add, MAPPER)
    assert (e["kind"], e["after"]["quantity"], e["after"]["active"], e["note"]) == (
        "override_add",
        7.0,
        True,
        "contract",
    )
    e = act(roles_site, f"/overrides/{e['override_id']}/retire", {}, MAPPER)
    assert (e["kind"], e["before"]["active"], e["after"]["active"]) == ("override_end", True, False)
    assert (e["subject"], e["subject_id"]) == ("override", str(e["override_id"]))

    approval = store.add_approval(
        roles_site.engine,
        billing_date=DAY,
        sync_key="company:10:sat",
        cw_company_id=10,
        product="sat",
        kind="change",
        addition_id=9,
        from_quantity=40,
        to_quantity=4,
        user="Jane",
        tenant="default",
    )
    e = act(roles_site, f"/approvals/{approval['id']}/revoke", {"note": "numbers look wrong"}, MAPPER)
    assert (e["kind"], e["actor_name"], e["actor_id"], e["note"], e["approval_id"]) == (
        "revoke",
        "Max Mapper",
        "12",
        "numbers look wrong",
        approval["id"],
    )
    assert (e["before"]["status"], e["after"]["status"]) == ("pending", "revoked")
    assert (e["subject"], e["subject_id"]) == ("approval", str(approval["id"]))

    # What was refused, or decided nothing, is no decision.
    seen = entries(roles_site)
    roles_site.post(
        f"/quarantine/{HELD_ROW}", {"action": "dismiss", "note": ""}, EDITOR
    )  # a dismissal needs a note
    roles_site.post("/mapping", {"organization_id": "2", "company_id": "10"}, EDITOR)  # 403
    roles_site.post("/mapping/1/delete", {}, MAPPER)  # no mapping left
    roles_site.post(f"/approvals/{approval['id']}/revoke", {}, MAPPER)  # no longer pending
    assert entries(roles_site) == seen


def test_a_rows_page_shows_every_decision_on_it(roles_site: Client) -> None:  # noqa: F811
    roles_site.post(f"/quarantine/{HELD_ROW}", {"action": "dismiss", "note": EVIL}, EDITOR)
    roles_site.post(
        f"/quarantine/{HELD_ROW}", {"action": "reopen", "note": "wrong call", "back": "row"}, MAPPER
    )
    html = get(roles_site, f"/quarantine/{HELD_ROW}")
    history = html[html.index('data-testid="history"') :]
    # Newest first: the reopening, then the dismissal the row itself no longer shows.
    assert history.index('data-kind="reopen"') < history.index('data-kind="dismiss"')
    assert "Erin Editor" in history and "Max Mapper" in history and "wrong call" in history
    assert "<script>alert" not in html and "&lt;script&gt;" in history
    assert 'href="/billing-review/history?company=10"' in html
    assert 'data-testid="no-history"' in get(roles_site, "/quarantine/1")


def test_a_companys_history_page(roles_site: Client) -> None:  # noqa: F811
    roles_site.post("/mapping", {"organization_id": "1", "company_id": "10"}, MAPPER)
    roles_site.post("/mapping", {"organization_id": "1", "company_id": "20"}, MAPPER)  # mapped away from 10
    roles_site.post("/overrides", {"company_id": "10", "product": "edr", "rule": "exclude"}, MAPPER)
    roles_site.post(f"/quarantine/{HELD_ROW}", {"action": "dismiss", "note": "seen"}, EDITOR)
    store.set_org_map(roles_site.engine, 1, 10, None, "Other Tenant", tenant="north")
    html = get(roles_site, "/history?company=10")
    assert "Decision history" in html and "Acme Corp #10" in html
    kinds = [k for k in ("dismiss", "override_add", "map") if f'data-kind="{k}"' in html]
    assert kinds == ["dismiss", "override_add", "map"]
    assert html.count('data-kind="map"') == 2 and "Other Tenant" not in html
    # The company names on the overrides and mapping pages lead here.
    assert 'href="/billing-review/history?company=10"' in get(roles_site, "/overrides")
    assert 'href="/billing-review/history?company=20"' in get(
        roles_site, "/mapping"
    )  # organization 1's company
    assert 'data-testid="no-history"' in get(roles_site, "/history?company=30")


def test_any_reader_exports_the_history_as_streamed_csv(roles_site: Client) -> None:  # noqa: F811
    roles_site.post(f"/quarantine/{HELD_ROW}", {"action": "dismiss", "note": '=HYPERLINK("x")'}, EDITOR)
    roles_site.post("/mapping", {"organization_id": "1", "company_id": "10"}, MAPPER)
    response = roles_site.client.get("/billing-review/history/export.csv?company=10", headers=VIEWER)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "content-length" not in response.headers  # streamed, not built whole first
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="billing-decisions-company10-'
    )
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == store.DECISION_COLUMNS
    # The contract's columns in its order, then the extensions (docs/contract.md §4).
    assert (
        rows[0][:11] == "id tenant at actor_id actor_name kind subject subject_id before after note".split()
    )
    by_kind = {r[5]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert set(by_kind) == {"dismiss", "map"}
    assert by_kind["dismiss"]["note"] == '\'=HYPERLINK("x")'  # a formula defused
    assert by_kind["dismiss"]["actor_name"] == "Erin Editor"
    assert (by_kind["dismiss"]["subject"], by_kind["dismiss"]["subject_id"]) == ("quarantine", str(HELD_ROW))
    assert (by_kind["map"]["subject"], by_kind["map"]["subject_id"]) == ("mapping", "1")
    assert '"status": "dismissed"' in by_kind["dismiss"]["after"]
    only_row = roles_site.client.get(f"/billing-review/history/export.csv?row={HELD_ROW}", headers=VIEWER)
    assert [r[5] for r in csv.reader(io.StringIO(only_row.text))][1:] == ["dismiss"]


def test_the_history_takes_no_writes_and_no_bad_filters(roles_site: Client) -> None:  # noqa: F811
    assert roles_site.client.get("/billing-review/history?company=acme", headers=VIEWER).status_code == 400
    assert (
        roles_site.client.get("/billing-review/history/export.csv?row=-1", headers=VIEWER).status_code == 400
    )
    assert roles_site.client.get("/billing-review/history").status_code == 401
    assert roles_site.post("/history", {}, MAPPER).status_code == 405


def test_a_settings_entry_names_its_variable_on_the_history_page(roles_site: Client) -> None:  # noqa: F811
    store.record_settings_change(
        roles_site.engine,
        tenant="default",
        variable="huntress_cw_billing_config",
        user="Dan",
        user_id="3",
        before={"change_limit": 25},
        after={"change_limit": 40},
    )
    html = get(roles_site, "/history")
    assert 'data-kind="settings" data-subject="settings" data-subject-id="huntress_cw_billing_config"' in html
    assert "settings (huntress_cw_billing_config)" in html and "Dan" in html
