"""Issue 19 §2: an approval is for the numbers on the screen.

The approve form carries what the person saw (the run that computed the row, the addition, the
agreement, the from and to quantities; for a new addition the product, the quantity and the unit
price); at POST the server compares them with the row as it is now. A run of the same billing date
refreshing the row in between (`store.upsert_quarantine`, the function a run records its held keys
with) makes the POST of the old form a refusal, "the numbers changed; review again", and nothing is
recorded. Reloading the form and posting it records the new numbers.

Through the real review app (FastAPI's TestClient), on SQLite and PostgreSQL (`db_url`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billing_sync import frames, store
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth
from tests.helpers.approvals_db import DAY, RUN, fill
from tests.helpers.review_roles import MAPPER, editor, mapper, reader

T = "default"
LATER_RUN = "manual__2026-11-01T06:00:00+00:00"  # a later run of the same billing date
REFUSAL = "the numbers changed; review again"
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
HELD = {
    "sync_key": "company:251:edr", "company_id": 251, "product": "edr", "catalog_identifier": "HUNTRESS-EDR",
    "agreement_id": 1579, "addition_id": 502, "huntress_quantity": 111, "previous_quantity": 40.0,
}  # fmt: skip
MISSING = {
    "sync_key": "company:252:edr", "company_id": 252, "product": "edr", "catalog_identifier": "HUNTRESS-EDR",
    "huntress_quantity": 12,
}  # fmt: skip


def record_run(
    engine: Any,
    run: str,
    *,
    held: dict[str, Any] = HELD,
    missing: dict[str, Any] = MISSING,
    price: float = 4.5,
) -> None:
    """What a run of the billing date records: its frames, then its held keys (refreshing the open
    rows in place: same row id, the new run id and payload)."""
    if store.get_run(engine, run, tenant=T) is None:
        store.start_run(engine, run, DAY, 5001, "push", {"agreement_types": []}, tenant=T)
    active = {"agreementStatus": "Active", "cancelledFlag": False, "startDate": "2025-01-01T00:00:00Z"}
    agreements = [{**active, "id": 1580, "name": "Gamma MSA", "company": {"id": 252}}]
    store.write_frame(engine, run, "agreements", frames.agreements_frame(agreements), tenant=T)
    if "catalog" in frames.SCHEMAS:
        catalog = frames.catalog_frame([{"id": 752, "identifier": "HUNTRESS-EDR", "price": price}])
        store.write_frame(engine, run, "catalog", catalog, tenant=T)
    rows = [
        {"sync_key": held["sync_key"], "reason_code": "change_exceeds_limit", "cw_company_id": 251,
         "product": "edr", "detail": "trips the guard", "payload": held},
        {"sync_key": missing["sync_key"], "reason_code": "no_live_addition", "cw_company_id": 252,
         "product": "edr", "detail": "no live addition", "payload": missing},
    ]  # fmt: skip
    store.upsert_quarantine(engine, run, DAY, rows, tenant=T)


class Site:
    def __init__(self, client: TestClient, engine: Any, rows: dict[str, int]) -> None:
        self.client, self.engine, self.rows = client, engine, rows

    def page(self, row: int) -> str:
        page = self.client.get(f"/billing-review/approvals/new?row={row}", headers=MAPPER)
        assert page.status_code == 200, page.text
        return page.text

    def form(self, row: int) -> dict[str, str]:
        """The approve form of the row as the page renders it: its hidden fields (csrf included)."""
        html = self.page(row)
        start = html.index('data-testid="approve-form"')
        return dict(HIDDEN.findall(html[start : html.index("</form>", start)]))

    def post(self, form: dict[str, str], **more: str) -> Any:
        return self.client.post(
            "/billing-review/approvals", data={**form, **more}, headers=MAPPER, follow_redirects=False
        )

    def approvals(self) -> list[dict[str, Any]]:
        return store.list_approvals(self.engine, tenant=T)

    def status(self, reason: str) -> str:
        (found,) = [q for q in store.list_quarantine(self.engine, tenant=T) if q["id"] == self.rows[reason]]
        return str(found["status"])


@pytest.fixture
def site(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", "{}")  # the tenant's settings
    engine = store.make_engine(db_url)
    rows = fill(engine)
    record_run(engine, RUN)  # the rows as the person first sees them: 40 → 111, a new addition of 12
    app = FastAPI()
    auth = ReviewAuth(reader=reader, editor=editor, mapper=mapper)
    app.mount("/billing-review", create_app(engine=engine, auth=auth, csrf_secret=b"k"))
    with TestClient(app) as client:
        yield Site(client, engine, rows)
    engine.dispose()


def test_a_change_refreshed_after_the_form_was_shown_is_refused_and_nothing_is_recorded(site: Site) -> None:
    row = site.rows["change_exceeds_limit"]
    assert re.search(r'data-testid="to">111<', site.page(row))
    shown = site.form(row)
    record_run(site.engine, LATER_RUN, held={**HELD, "huntress_quantity": 9_999_999})

    refused = site.post(shown, note="looks right")
    assert refused.status_code == 409
    assert REFUSAL in refused.text and "nothing was recorded" in refused.text
    assert site.approvals() == []
    assert site.status("change_exceeds_limit") == "open"
    # The refusal shows the numbers as they are now, to review again.
    assert re.search(r'data-testid="to">9999999<', refused.text)

    again = site.form(row)
    assert (again["seen_to_quantity"], again["seen_run_id"]) == ("9999999", LATER_RUN)
    done = site.post(again, note="checked the new count")
    assert done.status_code == 303 and "approval=approved" in done.headers["location"]
    (approval,) = site.approvals()
    assert (approval["addition_id"], approval["from_quantity"], approval["to_quantity"]) == (
        502,
        40,
        9_999_999,
    )


def test_a_refresh_by_another_run_with_the_same_numbers_is_refused_too(site: Site) -> None:
    """The run is part of what was seen: its frames gave the agreements and the price."""
    shown = site.form(site.rows["change_exceeds_limit"])
    record_run(site.engine, LATER_RUN)
    assert site.post(shown).status_code == 409
    assert site.approvals() == []


@pytest.mark.parametrize("what", ["quantity", "price"])
def test_a_new_addition_refreshed_after_the_form_was_shown_is_refused(site: Site, what: str) -> None:
    row = site.rows["no_live_addition"]
    shown = site.form(row)
    assert (shown["seen_product"], shown["seen_to_quantity"]) == ("edr", "12")
    if what == "quantity":
        record_run(site.engine, LATER_RUN, missing={**MISSING, "huntress_quantity": 900})
    elif "catalog" in frames.SCHEMAS:
        assert shown["seen_unit_price"] == "4.5"
        record_run(site.engine, LATER_RUN, price=450.0)
    else:
        pytest.skip("no catalog frame: no price is shown")
    refused = site.post(shown, agreement_id="1580")
    assert refused.status_code == 409 and REFUSAL in refused.text
    assert site.approvals() == []
    assert site.status("no_live_addition") == "open"

    done = site.post(site.form(row), agreement_id="1580")
    assert "approval=approved" in done.headers["location"]
    (approval,) = site.approvals()
    assert (approval["agreement_id"], approval["to_quantity"]) == (1580, 900 if what == "quantity" else 12)


def test_a_post_that_does_not_say_what_was_seen_is_refused(site: Site) -> None:
    shown = site.form(site.rows["change_exceeds_limit"])
    bare = {"row_id": shown["row_id"], "csrf_token": shown["csrf_token"]}
    assert site.post(bare).status_code == 409
    assert site.post({**shown, "seen_to_quantity": "5"}).status_code == 409
    assert site.post({**shown, "seen_from_quantity": "40.5"}).status_code == 409
    assert site.approvals() == []
    assert "approval=approved" in site.post(shown).headers["location"]


def test_a_key_an_override_decides_is_offered_at_the_overrides_quantity_only(site: Site) -> None:
    """docs/operations.md and the code say the same: such a key is approved for what the override
    aims for (`target`), never Huntress's count past it; the list, the form and the approval agree."""
    overridden = {**HELD, "huntress_quantity": 5, "override_id": 3, "target": 30}
    record_run(site.engine, LATER_RUN, held=overridden)
    row = site.rows["change_exceeds_limit"]
    listed = site.client.get("/billing-review/approvals", headers=MAPPER).text
    numbers = re.search(rf'data-testid="numbers-{row}">(.*?)</td>', listed, re.S)
    assert numbers and re.sub(r"<[^>]+>|\s+", " ", numbers.group(1)).split() == [
        "40",
        "→",
        "30",
        "(override",
        "3)",
    ]
    page = site.page(row)
    assert re.search(r'data-testid="to">30<', page) and 'data-testid="override-aim"' in page
    assert "approval=approved" in site.post(site.form(row)).headers["location"]
    (approval,) = site.approvals()
    assert (approval["from_quantity"], approval["to_quantity"]) == (40, 30)
