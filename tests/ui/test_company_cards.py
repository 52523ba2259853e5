"""Issue 20 §3 "decisions as a billing person thinks of them": the quarantine as one card per company,
with FastAPI's TestClient over a real SQLite billing database and the stand-in for Airflow's REST API
of tests/helpers/airflow_api.py (a real HTTP server on the loopback):

- a card leads with the money at stake, then offers the decisions that fit its rows (approve,
  adjust, create, dismiss the card, dismiss and apply now, an override, map) as the user may take them;
- "dismiss and apply now" dismisses every open row of that card only (not another card's, not
  another tenant's), each recorded in the decision history, triggers Apply now for its company, and
  comes back to the same filters, page and card; a note is required;
- rows say "approval pending", "override active" and "applying…" where true, Airflow asked once per
  page and the page drawn without it when it cannot be asked.

One test in headless Chromium on the real API server (tests/ui/conftest.py's `site`) looks at the page.
"""

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

from billing_sync import frames, store
from billing_sync.names import APPLY_DAG_ID
from billing_sync.review import airflow_runs
from billing_sync.review import app as review_app
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth
from tests.helpers.airflow_api import TOKEN, Airflow
from tests.helpers.approvals_db import DAY, RUN, fill
from tests.helpers.review_roles import EDITOR, MAPPER, VIEWER, editor, mapper
from tests.helpers.review_roles import (
    powered_reader as reader,  # the powers a role gives, as Airflow's auth computes them
)
from tests.ui.conftest import Site as BrowserSite

OTHER = "north"  # another tenant with a row of the same company and key
SHOTS = Path("/tmp/shots")


@dataclass
class Desk:
    client: TestClient
    sub: FastAPI
    engine: Any
    rows: dict[str, int]

    def get(self, path: str, headers: dict[str, str] = MAPPER) -> Any:
        return self.client.get(f"/billing-review{path}", headers=headers)

    def post(self, path: str, data: dict[str, str], headers: dict[str, str] = TOKEN) -> Any:
        """POST as the page's forms do: with the user's form token (the page's meta tag)."""
        html = self.get("/quarantine", headers).text
        token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)"', html).group(1)
        return self.client.post(
            f"/billing-review{path}",
            data={**data, "csrf_token": token},
            headers=headers,
            follow_redirects=False,
        )


@pytest.fixture
def desk(tmp_path: Path, airflow: Airflow, monkeypatch: pytest.MonkeyPatch) -> Iterator[Desk]:  # noqa: F811
    """test_approvals_page's run (company 251's held change, company 252's missing addition,
    organization 9 unmapped), with a second priced change of company 251, and tenant north's open
    row of company 251's key."""
    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", "{}")
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    rows = fill(engine)
    orgs = frames.organizations_frame([{"id": 9, "name": "Nine", "key": "nine"}])
    store.write_frame(engine, RUN, "organizations", orgs, tenant="default")  # the staging the cards name
    store.upsert_quarantine(
        engine, RUN, DAY,
        [{"sync_key": "company:251:sat", "reason_code": "change_exceeds_limit", "cw_company_id": 251,
          "product": "sat", "detail": "sat 10 → 30 trips the guard", "amount_at_stake": "20.00",
          "payload": {"company_id": 251, "product": "sat", "target": 30, "previous_quantity": 10.0,
                      "addition_id": 503, "agreement_id": 1579}}],
        tenant="default",
    )  # fmt: skip
    store.upsert_quarantine(
        engine, RUN, DAY,
        [{"sync_key": "company:251:edr", "reason_code": "change_exceeds_limit", "cw_company_id": 251,
          "product": "edr", "detail": "north's", "payload": {}}],
        tenant=OTHER,
    )  # fmt: skip
    rows["sat"] = _open_ids(engine, 251)[-1]
    sub = create_app(
        engine=engine, auth=ReviewAuth(reader=reader, editor=editor, mapper=mapper), csrf_secret=b"k"
    )
    sub.dependency_overrides[airflow_runs.api_base] = lambda: airflow.url
    root = FastAPI()
    root.mount("/billing-review", sub)
    with TestClient(root) as client:
        yield Desk(client, sub, engine, rows)
    engine.dispose()


def _open_ids(engine: Any, company: int, tenant: str = "default") -> list[int]:
    return sorted(
        r["id"] for r in store.list_quarantine(engine, status="open", company_id=company, tenant=tenant)
    )


def card(html: str, key: str) -> str:
    """The <section> of one card of the quarantine."""
    found = re.search(
        rf'<section class="card" id="[^"]+" data-card="{re.escape(key)}">(.*?)</section>', html, re.S
    )
    assert found, f"no card {key}"
    return found.group(1)


def head(section: str) -> str:
    """A card's head: its first row, before its rows."""
    return section[: section.index("</tr>")]


# --- what a card shows and offers ------------------------------------------------------------------


def test_a_card_leads_with_the_money_then_offers_what_fits_its_rows(desk: Desk) -> None:
    rows = desk.rows
    html = desk.get("/quarantine", MAPPER).text
    beta = card(html, "company:251")
    top = head(beta)
    assert top.index("Beta Dental") < top.index('data-testid="card-money"') < top.index("card-actions")
    assert "under-billed (revenue leak): 20.00 / month" in top, "the priced change, summed"
    # The card as a whole: dismiss it with one note (and apply now), add an override of its company.
    assert 'action="/billing-review/quarantine/group"' in top
    assert 'name="group" value="company:251"' in top and 'name="note" maxlength="2000" required' in top
    assert 'value="dismiss_apply" data-testid="group-dismiss-apply-company:251"' in top
    assert 'href="/billing-review/overrides?company=251#add-override"' in top
    assert "2 changes to approve or adjust" in top
    # Each held change: approve it, or adjust it (a fixed override filled in with the aimed quantity).
    for row, product, aimed in ((rows["change_exceeds_limit"], "edr", 5), (rows["sat"], "sat", 30)):
        assert f'href="/billing-review/approvals/new?row={row}" data-testid="approve-{row}">Approve…' in beta
        adjust = re.search(rf'href="([^"]+)" data-testid="adjust-{row}"', beta).group(1).replace("&amp;", "&")
        query = parse_qs(urlsplit(adjust).query)
        assert (query["company"], query["product"], query["rule"]) == (["251"], [product], ["fixed"])
        assert query["quantity"] == [str(aimed)] and adjust.endswith("#add-override")

    gamma = card(html, "company:252")
    row = rows["no_live_addition"]
    assert f'data-testid="approve-{row}">Create addition…' in gamma and "adjust-" not in gamma
    assert "1 addition to create" in head(gamma)

    org = card(html, "organization:9")
    assert 'data-testid="tools-9"' in org, "an organization's card maps it"
    assert "group-dismiss-apply-organization:9" in org and "/overrides?" not in org

    # An editor decides on the queue only; a reader is offered nothing.
    edited = card(desk.get("/quarantine", EDITOR).text, "company:251")
    assert "quarantine/group" in edited and "/overrides?" not in edited and "approve-" not in edited
    assert "adjust-" not in edited
    read = card(desk.get("/quarantine", VIEWER).text, "company:251")
    assert "<form" not in read and "card-actions" not in read and "20.00 / month" in read


def test_adjust_opens_the_override_form_filled_in(desk: Desk) -> None:
    row = desk.rows["change_exceeds_limit"]
    html = desk.get("/quarantine", MAPPER).text
    link = re.search(rf'href="/billing-review([^"]+)" data-testid="adjust-{row}"', html).group(1)
    form = desk.get(link.replace("&amp;", "&").split("#")[0], MAPPER).text
    assert 'name="company" value="Beta Dental #251"' in form
    assert '<option value="edr" selected>' in form and '<option value="fixed" selected>' in form
    assert 'name="quantity" value="5"' in form
    assert f'value="Adjusted from quarantine row {row}"' in form
    assert store.list_overrides(desk.engine, tenant="default") == [], "filled in, nothing added"


# --- dismiss the card and apply now ----------------------------------------------------------------


def test_dismiss_and_apply_now_takes_the_cards_open_rows_only_and_comes_back_to_it(
    desk: Desk,
    airflow: Airflow,  # noqa: F811
) -> None:
    beta = _open_ids(desk.engine, 251)
    others = {r["id"] for r in store.list_quarantine(desk.engine, status="open", tenant="default")} - set(
        beta
    )
    theirs = _open_ids(desk.engine, 251, OTHER)
    assert len(beta) == 2 and others and theirs

    form = {"group": "company:251", "action": "dismiss_apply", "note": "  fixed in ConnectWise  "}
    done = desk.post("/quarantine/group", {**form, "back": "status=open&order=amount"})
    assert done.status_code == 303, done.text

    for ident in beta:
        row = store.get_quarantine(desk.engine, ident, tenant="default")
        assert (row["status"], row["note"], row["resolved_by"]) == (
            "dismissed",
            "fixed in ConnectWise",
            "Max Mapper",
        )
        [entry] = store.list_decisions(desk.engine, tenant="default", quarantine_id=ident)
        assert (entry["kind"], entry["note"], entry["actor_name"]) == (
            "dismiss",
            "fixed in ConnectWise",
            "Max Mapper",
        )
    assert {r["id"] for r in store.list_quarantine(desk.engine, status="open", tenant="default")} == others
    assert _open_ids(desk.engine, 251, OTHER) == theirs, "another tenant's card of the company untouched"

    [post] = airflow.sent("POST")
    assert post["path"] == f"/api/v2/dags/{APPLY_DAG_ID}/dagRuns"
    assert post["authorization"] == "Bearer alices-airflow-token"
    assert post["json"]["conf"] == {"billing_date": DAY, "companies": [251], "organizations": []}

    where = urlsplit(done.headers["location"])
    query = parse_qs(where.query)
    assert where.path == "/billing-review/quarantine" and where.fragment == "group-company-251"
    assert (query["status"], query["order"], query["done"], query["id"]) == (
        ["open"],
        ["amount"],
        ["dismissed_company"],
        ["251"],
    )
    assert (query["rerun"], query["run"]) == (["applying"], [post["json"]["dag_run_id"]])
    page = desk.client.get(done.headers["location"].split("#")[0], headers=MAPPER).text
    assert "Every open row of the card dismissed with your note: Beta Dental (company #251)." in page
    assert f"Apply now: run {post['json']['dag_run_id']} of the apply DAG triggered" in page

    again = desk.post("/quarantine/group", {**form, "back": "status=open"})
    assert "error=none_open" in again.headers["location"] and len(airflow.sent("POST")) == 1


def test_dismissing_a_card_needs_a_note_and_a_real_card(desk: Desk, airflow: Airflow) -> None:  # noqa: F811
    for note in ("", "   "):
        refused = desk.post(
            "/quarantine/group",
            {"group": "company:251", "action": "dismiss_apply", "note": note, "back": "status=open"},
        )
        assert refused.status_code == 303
        assert refused.headers["location"].endswith("?status=open&error=note_required#group-company-251")
    assert len(_open_ids(desk.engine, 251)) == 2 and airflow.sent("POST") == []
    assert (
        "Dismissing needs a note saying why." in desk.get("/quarantine?status=open&error=note_required").text
    )

    for bad in (
        {"group": "company:x"},
        {"group": "tenant:north"},
        {"action": "delete"},
        {"back": "status=nope"},
    ):
        form = {"group": "company:251", "action": "dismiss", "note": "n", "back": "", **bad}
        assert desk.post("/quarantine/group", form).status_code == 400, bad
    form = {"group": "company:251", "action": "dismiss", "note": "n"}
    assert desk.post("/quarantine/group", form, VIEWER).status_code == 403
    forged = desk.client.post(
        "/billing-review/quarantine/group", data=form, headers=TOKEN, follow_redirects=False
    )
    assert forged.status_code == 403, "no form token, nothing done"
    assert len(_open_ids(desk.engine, 251)) == 2

    # A plain dismiss (no Apply now), by an editor: Airflow is not called.
    done = desk.post("/quarantine/group", {**form, "back": "status=open"}, EDITOR)
    assert "done=dismissed_company&id=251" in done.headers["location"] and airflow.sent("POST") == []

    # A line without organization or company is a card of its own key: dismissed, nothing to apply.
    store.upsert_quarantine(
        desk.engine, RUN, DAY,
        [{"sync_key": "line:77:edr", "reason_code": "invalid_usage", "product": "edr", "payload": {}}],
        tenant="default",
    )  # fmt: skip
    lone = card(desk.get("/quarantine", EDITOR).text, "key:line:77:edr")
    assert 'value="dismiss"' in lone and "dismiss_apply" not in lone
    form = {"group": "key:line:77:edr", "action": "dismiss_apply", "note": "test line"}
    done = desk.post("/quarantine/group", {**form, "back": "status=open"})
    assert "done=dismissed_group&id=1" in done.headers["location"] and airflow.sent("POST") == []
    assert (
        "Dismissed with your note: 1 open row(s) of the card."
        in desk.client.get(done.headers["location"], headers=MAPPER).text
    )


def test_every_decision_comes_back_to_the_same_page_and_card(
    desk: Desk,
    airflow: Airflow,  # noqa: F811 (the re-run's Airflow)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(review_app, "PAGE_SIZE", 2)
    second = desk.get("/quarantine?page=2", MAPPER).text
    assert "page 2 of 2" in second
    assert 'name="back" value="status=open&amp;page=2"' in second, "the forms carry the page"
    keys = re.findall(r'data-card="([^"]+)"', second)
    row = int(re.findall(r'data-row-id="(\d+)"', second)[0])
    kind, ident = keys[0].split(":")

    # One row of the card, resolved: the same page, the row's card.
    done = desk.post(f"/quarantine/{row}", {"action": "resolve", "back": "status=open&page=2"})
    assert done.headers["location"] == (
        f"/billing-review/quarantine?status=open&page=2&done=resolved&id={row}#group-{kind}-{ident}"
    )
    # The flat list: back to the row.
    flat = desk.post(f"/quarantine/{row}", {"action": "reopen", "back": "status=all&view=rows"})
    assert flat.headers["location"].endswith(f"view=rows&done=open&id={row}#row-{row}")
    # Mapping an organization from its card, and re-running the billing date: the same page too.
    place = {"back": "status=open&page=2"}
    mapped = desk.post("/mapping", {"organization_id": "9", "company_id": "252", **place})
    assert mapped.headers["location"].startswith("/billing-review/quarantine?status=open&page=2&done=mapped")
    assert mapped.headers["location"].endswith("#group-organization-9")
    rerun = desk.post("/rerun", {"billing_date": DAY, **place})
    assert rerun.headers["location"].startswith("/billing-review/quarantine?status=open&page=2&rerun=")
    # A decision that empties the page it was taken on: the last page there is.
    for key in re.findall(r'data-card="([^"]+)"', desk.get("/quarantine?page=2", MAPPER).text):
        done = desk.post(
            "/quarantine/group",
            {"group": key, "action": "dismiss", "note": "n", "back": "status=open&page=2"},
        )
    assert "page=" not in done.headers["location"] and "done=dismissed_" in done.headers["location"]


# --- badges ---------------------------------------------------------------------------------------


def test_rows_say_approval_pending_override_active_and_applying(desk: Desk, airflow: Airflow) -> None:  # noqa: F811
    rows = desk.rows
    held = store.get_quarantine(desk.engine, rows["change_exceeds_limit"], tenant="default")
    store.add_approval(
        desk.engine, billing_date=DAY, sync_key=held["sync_key"], cw_company_id=251, product="edr",
        kind="change", addition_id=502, agreement_id=1579, from_quantity=40.0, to_quantity=5,
        user="Alice", user_id="alice", quarantine_id=held["id"], tenant="default",
    )  # fmt: skip
    store.add_override(
        desk.engine,
        cw_company_id=252,
        product="edr",
        rule="minimum",
        quantity=3,
        user="Alice",
        tenant="default",
    )
    store.add_override(  # another tenant's override is no badge here
        desk.engine, cw_company_id=251, product="sat", rule="fixed", quantity=3, user="Nora", tenant=OTHER
    )
    airflow.runs[APPLY_DAG_ID] = {
        "apply__a": {"dag_run_id": "apply__a", "state": "running",
                     "conf": {"billing_date": DAY, "companies": [], "organizations": [9]}},
        "apply__b": {"dag_run_id": "apply__b", "state": "success",
                     "conf": {"billing_date": DAY, "companies": [251], "organizations": []}},
        "apply__c": {"dag_run_id": "apply__c", "state": "queued",
                     "conf": {"billing_date": "2026-10-01", "companies": [252], "organizations": []}},
    }  # fmt: skip

    html = desk.get("/quarantine", TOKEN).text
    badges = set(re.findall(r'data-testid="badge-([a-z]+)-(\d+)">([^<]+)<', html))
    assert badges == {
        ("pending", str(rows["change_exceeds_limit"]), "approval pending"),
        ("override", str(rows["no_live_addition"]), "override active"),
        ("applying", str(rows["unmapped_organization"]), "applying…"),
    }
    reads = [r for r in airflow.sent("GET") if r["path"].endswith("/dagRuns")]
    assert len(reads) == 1 and reads[0]["path"] == f"/api/v2/dags/{APPLY_DAG_ID}/dagRuns"
    assert parse_qs(reads[0]["query"])["state"] == ["queued", "running"], "one request, the active runs only"
    assert reads[0]["authorization"] == "Bearer alices-airflow-token", "as the user"
    flat = desk.get("/quarantine?view=rows", TOKEN).text
    assert set(re.findall(r'data-testid="badge-([a-z]+)-(\d+)"', flat)) == {(b, r) for b, r, _ in badges}

    # No Airflow login: Airflow is not asked, the rest still shows.
    airflow.requests.clear()
    plain = desk.get("/quarantine", MAPPER).text
    assert (
        airflow.requests == []
        and 'data-testid="badge-applying-' not in plain
        and 'data-testid="badge-pending-' in plain
    )
    # Airflow refusing or gone: the page, without "applying…".
    desk.sub.dependency_overrides[airflow_runs.api_base] = lambda: "http://127.0.0.1:9"  # nothing listens
    gone = desk.get("/quarantine", TOKEN)
    assert (
        gone.status_code == 200
        and 'data-testid="badge-applying-' not in gone.text
        and 'data-testid="badge-override-' in gone.text
    )


# --- in a browser ---------------------------------------------------------------------------------


@pytest.mark.browser
def test_the_cards_read_well_and_a_decision_comes_back_to_its_card(page: Any, site: BrowserSite) -> None:  # noqa: F811
    """The real API server and login (Airflow is asked for the apply runs as the user; whatever it
    answers, the page stands). A row of a card of several rows is dismissed from further down the
    page: the answer scrolls back to that card."""
    from playwright.sync_api import expect

    opened = [
        r for r in store.list_quarantine(site.engine, status="open", limit=None, tenant="default")
        if r["cw_company_id"] is not None
    ]  # fmt: skip
    counts: dict[int, int] = {}
    for r in opened:
        counts[r["cw_company_id"]] = counts.get(r["cw_company_id"], 0) + 1
    company = max(counts, key=lambda c: (counts[c], c))
    assert counts[company] >= 2, "generate(40, 7) holds a company with two rows"
    row = min(r["id"] for r in opened if r["cw_company_id"] == company)
    try:
        page.goto(site.page("/quarantine?order=amount"))
        cards = page.locator("section.card")
        expect(cards.first).to_be_visible()
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "cards.png"), full_page=False)
        target = page.locator(f"#group-company-{company}")
        target.get_by_label(f"Note for row {row}").fill("known, nothing to do")
        target.get_by_test_id(f"actions-{row}").get_by_role("button", name="Dismiss", exact=True).click()
        expect(page.get_by_role("status")).to_contain_text(f"Row {row} dismissed")
        assert page.url.endswith(f"#group-company-{company}") and "order=amount" in page.url
        expect(target).to_be_in_viewport()
        page.screenshot(path=str(SHOTS / "cards-after.png"), full_page=False)
        # The card's own dismissal asks for a note before anything is posted.
        target.get_by_role("button", name="Dismiss the card").click()
        note = target.locator("input[name=note][required]")
        assert note.evaluate("field => field.validity.valueMissing")
        assert store.get_quarantine(site.engine, row, tenant="default")["status"] == "dismissed"
        assert (
            len(
                [
                    r
                    for r in store.list_quarantine(
                        site.engine, status="open", company_id=company, tenant="default"
                    )
                ]
            )
            == counts[company] - 1
        )
    finally:
        store.set_quarantine_status(site.engine, row, "open", "test", tenant="default")
