"""Issue 10 §4: the pages answer bad input with a 4xx and a plain message, never a 500.

Crafted ids (`²`, which `str.isdigit()` accepts and `int()` refuses; 5,000-digit numbers; ids past
2^63, which no SQL BIGINT holds), a non-ASCII CSRF token (`hmac.compare_digest` raises TypeError on a
non-ASCII str), oversized form fields and an oversized body. The TestClient re-raises an unhandled
server exception, so a 500 shows up as a test error, not a status code.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from billing_sync import store
from billing_sync.review.security import ReviewAuth
from tests.helpers.crafted_ids import CRAFTED_IDS, HUGE, PAST_INT64, SUPERSCRIPT_TWO
from tests.helpers.review_app import ALICE, RUN, App, editor, fill, mounted, reader


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The app of tests/helpers/review_app.py: its billing DB and stand-in auth."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    directory = fill(engine, tmp_path / "reports")
    with mounted(engine, tmp_path / "reports", directory, ReviewAuth(reader=reader, editor=editor)) as app:
        yield app


def _plain_400(response) -> str:
    """A 400 whose detail is one short sentence (no validation dump, no traceback)."""
    assert response.status_code == 400, (response.status_code, response.text[:300])
    detail = response.json()["detail"]
    assert isinstance(detail, str) and 0 < len(detail) < 200, detail
    assert "Traceback" not in detail
    return detail


@pytest.mark.parametrize("ident", CRAFTED_IDS)
def test_crafted_row_id_in_the_path(app: App, ident: str) -> None:
    path = f"/quarantine/{quote(ident, safe='')}"
    _plain_400(app.get(path))
    _plain_400(app.post(path, {"action": "resolve"}))


@pytest.mark.parametrize("ident", CRAFTED_IDS)
def test_crafted_organization_id(app: App, ident: str) -> None:
    _plain_400(app.post("/mapping", {"organization_id": ident, "company_id": "10"}))
    _plain_400(app.post(f"/mapping/{quote(ident, safe='')}/delete", {}))
    assert store.list_org_map(app.engine, tenant="default") == []


@pytest.mark.parametrize("ident", [SUPERSCRIPT_TWO, HUGE, PAST_INT64, "١٢"])
def test_crafted_company_id(app: App, ident: str) -> None:
    """A typo ("abc") gets the form's message; a crafted id gets a 400."""
    _plain_400(app.post("/mapping", {"organization_id": "2", "company_id": ident}))
    assert store.list_org_map(app.engine, tenant="default") == []


@pytest.mark.parametrize(
    "query",
    [
        f"company_id={SUPERSCRIPT_TWO}",
        f"company_id={PAST_INT64}",
        f"company_id={HUGE}",
        f"page={SUPERSCRIPT_TWO}",
        "page=99999999999999999",  # its offset is past 2^63
        f"page={HUGE}",
        "run_id=" + "r" * 300,
        "run_id=a%00b",
        "reason_code=%C2%B2",
    ],
)
def test_crafted_list_filters(app: App, query: str) -> None:
    _plain_400(app.get(f"/quarantine?{query}"))


@pytest.mark.parametrize("query", [f"id={SUPERSCRIPT_TWO}", f"id={PAST_INT64}", f"id={HUGE}"])
def test_crafted_mapping_focus(app: App, query: str) -> None:
    _plain_400(app.get(f"/mapping?{query}"))


@pytest.mark.parametrize("query", [f"page={SUPERSCRIPT_TWO}", "page=99999999999999999"])
def test_crafted_runs_page(app: App, query: str) -> None:
    _plain_400(app.get(f"/runs?{query}"))


@pytest.mark.parametrize("run_id", ["r" * 300, "a%00b"])
def test_crafted_run_id_in_the_path(app: App, run_id: str) -> None:
    for path in [f"/runs/{run_id}", f"/runs/{run_id}/report", f"/runs/{run_id}/files/report.html"]:
        _plain_400(app.get(path, follow_redirects=False))


def test_file_name_with_nul_is_not_found(app: App) -> None:
    assert app.get(f"/runs/{quote(RUN, safe='')}/files/report%00.html").status_code == 404


def test_back_filter_with_crafted_company_id(app: App) -> None:
    _plain_400(app.post("/quarantine/1", {"action": "resolve", "back": f"company_id={SUPERSCRIPT_TWO}"}))
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"


@pytest.mark.parametrize("token", ["é" * 64, "²" * 64, "\u0660" * 64, "a" * 5000, "0" * 63, "Z" * 64])
def test_malformed_csrf_token(app: App, token: str) -> None:
    done = app.post("/quarantine/1", {"action": "resolve", "csrf_token": token}, token=False)
    assert "token" in _plain_400(done)
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"


def test_non_ascii_origin_or_unparsable_origin_is_refused(app: App) -> None:
    for origin in ["http://[", "http://ex\u00e4mple.test", "null"]:
        done = app.client.post(
            "/billing-review/quarantine/1",
            data={"action": "resolve", "csrf_token": app.token(ALICE)},
            headers={**ALICE, "Origin": origin.encode("utf-8")},
            follow_redirects=False,
        )
        assert done.status_code == 403, origin
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"


@pytest.mark.parametrize("field", ["note", "back"])
def test_oversized_text_fields(app: App, field: str) -> None:
    form = {"action": "dismiss", "note": "ok", "back": "status=open", field: "x" * 2001}
    assert "2000" in _plain_400(app.post("/quarantine/1", form))
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"
    big_note = {"organization_id": "2", "company_id": "10", "note": "n" * 2001}
    assert "2000" in _plain_400(app.post("/mapping", big_note))
    assert store.list_org_map(app.engine, tenant="default") == []


def test_a_note_of_exactly_the_limit_is_kept(app: App) -> None:
    assert app.post("/quarantine/1", {"action": "dismiss", "note": "x" * 2000}).status_code == 303
    assert store.get_quarantine(app.engine, 1, tenant="default")["note"] == "x" * 2000


def test_missing_or_repeated_form_fields(app: App) -> None:
    assert "action" in _plain_400(app.post("/quarantine/1", {}))
    assert "organization_id" in _plain_400(app.post("/mapping", {"company_id": "10"}))


def test_oversized_body_is_refused_before_it_is_read(app: App) -> None:
    body = {"action": "dismiss", "note": "x" * 200_000, "csrf_token": app.token(ALICE)}
    done = app.client.post("/billing-review/quarantine/1", data=body, headers=ALICE, follow_redirects=False)
    assert done.status_code == 413
    assert "too large" in done.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        yield b"action=dismiss&note="
        for _ in range(100):
            yield b"x" * 10_000

    streamed = app.client.post(
        "/billing-review/quarantine/1",
        content=chunks(),
        headers={**ALICE, "Content-Type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert streamed.status_code == 413
    assert store.get_quarantine(app.engine, 1, tenant="default")["status"] == "open"


def test_html_clients_get_the_message_as_a_page(app: App) -> None:
    page = app.get(f"/quarantine/{SUPERSCRIPT_TWO}", headers={**ALICE, "Accept": "text/html"})
    assert page.status_code == 400
    assert "<h1>400</h1>" in page.text and "Traceback" not in page.text
    assert json.dumps(SUPERSCRIPT_TWO) not in page.text
