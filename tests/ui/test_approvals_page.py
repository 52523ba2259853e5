"""The approvals pages with FastAPI's TestClient (issue 11 §1, §4): approving what a customer is billed
takes the approvals power (`ApprovalsDep`); what is approved comes from the quarantine row, never the
form; the user's name and id are recorded; "Approve and re-run" triggers the run through Airflow as
the user (`airflow_runs`, stubbed here); a pending approval can be revoked."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient

from billing_sync import frames, store
from billing_sync.review import airflow_runs
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth
from tests.helpers.approvals_db import DAY, RUN, fill, seen_fields
from tests.helpers.review_roles import EDITOR, MAPPER, VIEWER, editor, mapper, reader


class Site:
    def __init__(self, client: TestClient, engine: Any, rows: dict[str, int]) -> None:
        self.client, self.engine, self.rows = client, engine, rows

    def get(self, path: str, headers: dict[str, str] = MAPPER) -> Any:
        return self.client.get(f"/billing-review{path}", headers=headers)

    def post(
        self,
        path: str,
        data: dict[str, str],
        headers: dict[str, str] = MAPPER,
        token: bool = True,
        seen: dict[str, str] | None = None,
    ) -> Any:
        """POST as the page's form does. Approving: with the numbers the form shows (its `seen_*`
        hidden fields, rendered now unless `seen` gives those of an earlier render)."""
        if path.startswith("/approvals?") or path == "/approvals":
            data = {**(self.shown(data["row_id"]) if seen is None else seen), **data}
        if token:
            html = self.get("/quarantine", headers).text
            data = {**data, "csrf_token": re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)}
        return self.client.post(f"/billing-review{path}", data=data, headers=headers, follow_redirects=False)

    def shown(self, row_id: str | int) -> dict[str, str]:
        return seen_fields(self.client, row_id)

    def approvals(self, **filters: Any) -> list[dict[str, Any]]:
        return store.list_approvals(self.engine, **{"tenant": "default", **filters})


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", "{}")  # the settings: four_eyes off
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    rows = fill(engine)
    auth = ReviewAuth(reader=reader, editor=editor, mapper=mapper)
    root = FastAPI()
    root.mount("/billing-review", create_app(engine=engine, auth=auth, csrf_secret=b"k"))
    with TestClient(root) as client:
        yield Site(client, engine, rows)
    engine.dispose()


def test_the_page_lists_the_rows_one_may_approve(site: Site) -> None:
    page = site.get("/approvals", VIEWER)
    assert page.status_code == 200
    assert f'data-testid="approve-{site.rows["change_exceeds_limit"]}"' in page.text
    assert f'data-testid="approve-{site.rows["no_live_addition"]}"' in page.text
    assert f'data-row-id="{site.rows["unmapped_organization"]}"' not in page.text
    assert ">Approvals</a>" in page.text, "in the navigation"


def test_the_change_form_shows_exactly_the_numbers_held(site: Site) -> None:
    page = site.get(f"/approvals/new?row={site.rows['change_exceeds_limit']}", VIEWER).text
    assert re.search(r'data-testid="from">40<', page) and re.search(r'data-testid="to">5<', page)
    assert "Approve and re-run 2026-11-01" in page


def test_the_create_form_lists_the_companys_live_agreements_and_the_price(site: Site) -> None:
    page = site.get(f"/approvals/new?row={site.rows['no_live_addition']}", VIEWER).text
    assert 'value="1580"' in page and "Gamma MSA" in page
    assert 'value="1581"' not in page, "ended before the billing date"
    assert 'value="1579"' not in page, "another company's"
    assert re.search(r'data-testid="quantity">12<', page)
    if "catalog" in frames.SCHEMAS:
        assert "<strong>4.50</strong> each, 54.00 a month" in page


def test_the_create_form_preselects_the_agreement_carrying_the_companys_huntress_additions(
    site: Site,
) -> None:
    """Issue 20 §3: of Gamma's two live agreements, the one that already carries its other live
    Huntress addition (SIEM, a mapped product) is checked and said by name; a cancelled Huntress
    addition, or a product not mapped, carries nothing."""
    active = {"agreementStatus": "Active", "cancelledFlag": False, "startDate": "2025-01-01T00:00:00Z"}
    agreements = {
        1580: {**active, "id": 1580, "name": "Gamma MSA", "company": {"id": 252}, "type": {"name": "MSA"}},
        1582: {**active, "id": 1582, "name": "Gamma Security", "company": {"id": 252}},
    }
    store.write_frame(
        site.engine, RUN, "agreements", frames.agreements_frame(list(agreements.values())), tenant="default"
    )
    additions = [
        {"id": 900, "agreementId": 1582, "product": {"identifier": "HUNTRESS-SIEM"}, "quantity": 3},
        {"id": 901, "agreementId": 1580, "product": {"identifier": "HUNTRESS-EDR"}, "quantity": 9,
         "cancelledDate": "2025-06-01T00:00:00Z"},
        {"id": 902, "agreementId": 1580, "product": {"identifier": "OFFICE-365"}, "quantity": 50},
    ]  # fmt: skip
    store.write_frame(
        site.engine, RUN, "additions", frames.additions_frame(agreements, additions), tenant="default"
    )
    page = site.get(f"/approvals/new?row={site.rows['no_live_addition']}").text
    checked = re.findall(r'name="agreement_id" value="(\d+)" checked', page)
    assert checked == ["1582"], checked
    assert re.search(r'data-testid="carries-1582"[^>]*>[^<]*Huntress', page)
    assert 'data-testid="carries-1580"' not in page


def test_the_rows_history_shows_its_approval_and_revocation(site: Site) -> None:
    """Issue 19 §5: a row's history names what was decided on it, approvals included (an approval is
    recorded on its own table, yet approved from the row)."""
    row = site.rows["change_exceeds_limit"]
    assert site.post("/approvals", {"row_id": str(row), "note": "35 seats left"}).status_code == 303
    (approval,) = site.approvals()
    site.post(f"/approvals/{approval['id']}/revoke", {"note": "asked twice"})
    history = site.get(f"/quarantine/{row}").text.split('data-testid="history"', 1)[1]
    assert history.index('data-kind="revoke"') < history.index('data-kind="approve"')  # newest first
    assert "35 seats left" in history and "asked twice" in history
    other = site.rows["no_live_addition"]
    assert 'data-kind="approve"' not in site.get(f"/quarantine/{other}").text


def test_a_mapper_approves_a_held_change_recorded_with_name_and_id(site: Site) -> None:
    row = site.rows["change_exceeds_limit"]
    # A stray number changes nothing: what is approved is what the row holds and the form showed.
    shown = site.shown(row)
    done = site.post("/approvals", {"row_id": str(row), "note": "35 seats left", "to_quantity": "999"})
    assert done.status_code == 303
    (approval,) = site.approvals()
    assert done.headers["location"] == (
        f"/billing-review/approvals?approval=approved&id={approval['id']}&billing_date={DAY}"
    )
    assert (approval["kind"], approval["addition_id"], approval["from_quantity"], approval["to_quantity"]) == (
        "change", 502, 40, 5,
    )  # fmt: skip
    assert (approval["approved_by"], approval["approved_by_id"], approval["note"]) == (
        "Max Mapper",
        "12",
        "35 seats left",
    )
    assert (approval["billing_date"], approval["sync_key"], approval["status"]) == (
        date(2026, 11, 1),
        "company:251:edr",
        "pending",
    )
    assert (
        "recorded. The next run of its billing date applies it"
        in site.get(done.headers["location"][15:]).text
    )

    again = site.post("/approvals", {"row_id": str(row)}, seen=shown)
    assert "approval=already_pending" in again.headers["location"]
    assert len(site.approvals()) == 1


def test_a_mapper_approves_a_new_addition_on_a_listed_agreement_only(site: Site) -> None:
    row = str(site.rows["no_live_addition"])
    for agreement in ("", "1579", "1581"):
        refused = site.post("/approvals", {"row_id": row, "agreement_id": agreement})
        assert "approval=pick_agreement" in refused.headers["location"]
    assert site.approvals() == []
    assert site.post("/approvals", {"row_id": row, "agreement_id": "²"}).status_code == 400

    assert site.post("/approvals", {"row_id": row, "agreement_id": "1580"}).status_code == 303
    (approval,) = site.approvals()
    assert (approval["kind"], approval["agreement_id"], approval["to_quantity"], approval["addition_id"]) == (
        "create_addition", 1580, 12, None,
    )  # fmt: skip


def test_only_a_mapper_may_approve_or_revoke(site: Site) -> None:
    row = str(site.rows["change_exceeds_limit"])
    assert site.post("/approvals", {"row_id": row}, VIEWER).status_code == 403
    assert site.post("/approvals", {"row_id": row}, EDITOR).status_code == 403
    assert site.post("/approvals", {"row_id": row}, token=False).status_code == 403, "CSRF"
    assert site.approvals() == []
    site.post("/approvals", {"row_id": row})
    (approval,) = site.approvals()
    assert site.post(f"/approvals/{approval['id']}/revoke", {}, VIEWER).status_code == 403
    assert site.post(f"/approvals/{approval['id']}/revoke", {}, EDITOR).status_code == 403
    assert store.get_approval(site.engine, approval["id"], tenant="default")["status"] == "pending"


def test_a_pending_approval_is_revoked_by_name(site: Site) -> None:
    site.post("/approvals", {"row_id": str(site.rows["change_exceeds_limit"]), "note": "first look"})
    (approval,) = site.approvals()
    done = site.post(f"/approvals/{approval['id']}/revoke", {"note": "wrong customer"})
    assert done.headers["location"].endswith(f"approval=revoked&id={approval['id']}")
    after = store.get_approval(site.engine, approval["id"], tenant="default")
    assert after["status"] == "revoked"
    assert after["note"] == "first look\nRevoked by Max Mapper (id 12): wrong customer"
    again = site.post(f"/approvals/{approval['id']}/revoke", {})
    assert again.headers["location"].endswith(f"approval=not_pending&id={approval['id']}")
    assert site.post("/approvals/424242/revoke", {}).status_code == 404
    # Revoked: the row may be approved again.
    assert (
        "approval=approved"
        in site.post("/approvals", {"row_id": str(site.rows["change_exceeds_limit"])}).headers["location"]
    )


def test_rows_that_offer_nothing_are_not_approved(site: Site) -> None:
    unmapped = str(site.rows["unmapped_organization"])
    assert "approval=not_approvable" in site.post("/approvals", {"row_id": unmapped}).headers["location"]
    assert 'data-testid="not-approvable"' in site.get(f"/approvals/new?row={unmapped}").text
    store.set_quarantine_status(
        site.engine, site.rows["change_exceeds_limit"], "dismissed", "x", "known", tenant="default"
    )
    held = str(site.rows["change_exceeds_limit"])
    assert "approval=not_approvable" in site.post("/approvals", {"row_id": held}).headers["location"]
    assert site.approvals() == []
    assert site.post("/approvals", {"row_id": "99999"}).status_code == 404
    assert site.get("/approvals/new?row=²").status_code == 400
    assert site.get("/approvals?status=bogus").status_code == 400
    assert site.get("/approvals?billing_date=yesterday").status_code == 400


def test_approve_and_rerun_triggers_the_billing_date_as_the_user(site: Site, monkeypatch) -> None:
    calls = []

    def trigger(base: str, token: str, day: date, now: Any = None, *, dag_id: str) -> airflow_runs.Triggered:
        calls.append((token, day, dag_id))
        return airflow_runs.Triggered("desk__2026-11-01__20261202T101500Z", "2026-11-01T10:15:00Z", False)

    monkeypatch.setattr(airflow_runs, "trigger_billing_run", trigger)
    bearer = {**MAPPER, "Authorization": "Bearer the-users-token"}
    done = site.post("/approvals", {"row_id": str(site.rows["change_exceeds_limit"]), "rerun": "1"}, bearer)
    assert calls == [("the-users-token", date(2026, 11, 1), "huntress_connectwise_billing_sync")], (
        "as the signed-in user, for the row's date, of the tenant's DAG"
    )
    (approval,) = site.approvals()
    location = done.headers["location"]
    assert f"approval=approved_rerun&id={approval['id']}" in location
    assert "rerun=queued" in location and "run=desk__2026-11-01__20261202T101500Z" in location
    page = site.get(location[len("/billing-review") :]).text
    assert (
        "a run of its billing date was triggered" in page
        and "DAG run desk__2026-11-01__20261202T101500Z" in page
    )


def test_an_approval_stands_when_airflow_refuses_the_run(site: Site, monkeypatch) -> None:
    def refuse(*_: Any, **__: Any) -> Any:
        raise HTTPException(403, airflow_runs.NOT_ALLOWED)

    monkeypatch.setattr(airflow_runs, "trigger_billing_run", refuse)
    bearer = {**MAPPER, "Authorization": "Bearer t"}
    done = site.post("/approvals", {"row_id": str(site.rows["change_exceeds_limit"]), "rerun": "1"}, bearer)
    assert "approval=approved_rerun_refused" in done.headers["location"]
    assert [a["status"] for a in site.approvals()] == ["pending"]
    # Without an Airflow login to trigger with, nothing is triggered either.
    monkeypatch.setattr(airflow_runs, "trigger_billing_run", lambda *a, **k: pytest.fail("triggered"))
    row = str(site.rows["no_live_addition"])
    done = site.post("/approvals", {"row_id": row, "agreement_id": "1580", "rerun": "1"})
    assert "approval=approved_rerun_refused" in done.headers["location"]


def test_held_quarantine_rows_link_to_their_approval_form(site: Site) -> None:
    held, missing = site.rows["change_exceeds_limit"], site.rows["no_live_addition"]
    for path in ("/quarantine", "/quarantine?view=rows", f"/quarantine/{held}"):
        page = site.get(path, VIEWER).text
        assert f'href="/billing-review/approvals/new?row={held}"' in page, path
    assert "Create addition…" in site.get("/quarantine?view=rows", VIEWER).text
    assert (
        f"approvals/new?row={site.rows['unmapped_organization']}" not in site.get("/quarantine", VIEWER).text
    )
    assert f'href="/billing-review/approvals/new?row={missing}"' in site.get(f"/quarantine/{missing}").text
