"""A page offers only the actions its user may take (issue 11 §8's viewer "can see all of it and do
none of it"): the areas the reader's `Reviewer` holds (`may(area)`) decide which forms are rendered, while every
POST route still checks the permission itself. Stand-in auth by header, as in test_permissions.py;
the real Airflow auth deciding the flags is in test_month_close.py's viewer test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billing_sync import frames, store
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth, Reviewer
from tests.helpers.approvals_db import RUN, seen_fields
from tests.helpers.approvals_db import fill as fill_approvals
from tests.helpers.review_roles import EDITOR, MAPPER, VIEWER, editor, mapper
from tests.helpers.review_roles import powered_reader as reader

POST_FORM = re.compile(r'<form\b[^>]*\bmethod="post"[^>]*\baction="/billing-review([^"]*)"')
QUARANTINE_ACTIONS = {"/quarantine/<id>", "/quarantine/group", "/rerun"}
MAPPING_ACTIONS = {
    "/mapping",
    "/mapping/bulk",
    "/mapping/<id>/delete",
    "/overrides",
    "/overrides/<id>/retire",
    "/approvals",
    "/approvals/<id>/revoke",
}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, int]]]:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    rows = fill_approvals(engine)
    orgs = [{"id": 9, "name": "Nine", "key": "nine"}, {"id": 10, "name": "Zeta", "key": "zeta"}]
    store.write_frame(engine, RUN, "organizations", frames.organizations_frame(orgs), tenant="default")
    store.upsert_quarantine(
        engine,
        RUN,
        "2026-11-01",
        [
            {"sync_key": "organization:10:edr", "reason_code": "unmapped_organization",
             "huntress_organization_id": 10, "product": "edr", "payload": {"huntress_quantity": 2}},
        ], tenant="default"
    )  # fmt: skip
    store.set_org_map(
        engine, 77, 251, None, "someone", tenant="default"
    )  # an organization the newest run did not stage
    auth = ReviewAuth(reader=reader, editor=editor, mapper=mapper)
    root = FastAPI()
    root.mount("/billing-review", create_app(engine=engine, auth=auth, csrf_secret=b"k"))
    with TestClient(root) as client:
        token = _token(client.get("/billing-review/quarantine", headers=MAPPER).text)
        for path, form in [
            ("/mapping", {"organization_id": "9", "company_id": "252"}),
            ("/overrides", {"company_id": "251", "product": "edr", "rule": "minimum", "quantity": "25"}),
            (
                "/approvals",
                {
                    "row_id": str(rows["change_exceeds_limit"]),
                    "note": "ok",
                    **seen_fields(client, rows["change_exceeds_limit"]),  # what the form showed
                },
            ),
        ]:
            done = client.post(
                f"/billing-review{path}",
                data={**form, "csrf_token": token},
                headers=MAPPER,
                follow_redirects=False,
            )
            assert done.status_code == 303, (path, done.text)
        yield client, rows
    engine.dispose()


def _token(html: str) -> str:
    return re.search(r'<meta name="csrf-token" content="([0-9a-f]+)"', html).group(1)


def _pages(rows: dict[str, int]) -> list[str]:
    return [
        "/quarantine",
        "/quarantine?status=all&view=rows",
        f"/quarantine/{rows['no_live_addition']}",
        "/mapping",
        "/mapping/companies?q=Gamma&form=map-10",
        "/overrides",
        "/approvals?status=all",
        f"/approvals/new?row={rows['no_live_addition']}",
        "/runs",
    ]


def _offered(client: TestClient, rows: dict[str, int], headers: dict[str, str]) -> dict[str, set[str]]:
    """Per page, the actions of its POST forms (ids as <id>), and "approve link" / "picker button"."""
    offered: dict[str, set[str]] = {}
    for path in _pages(rows):
        page = client.get(f"/billing-review{path}", headers=headers)
        assert page.status_code == 200, (path, page.text)
        found = {re.sub(r"/\d+", "/<id>", a) for a in POST_FORM.findall(page.text)}
        if re.search(r'data-testid="approve-\d', page.text):
            found.add("approve link")
        if "<button" in page.text and ' form="map-' in page.text:
            found.add("picker button")
        offered[path] = found
    return offered


def test_a_reader_is_offered_no_action_and_told_so(site: tuple[TestClient, dict[str, int]]) -> None:
    client, rows = site
    assert _offered(client, rows, VIEWER) == {path: set() for path in _pages(rows)}
    page = client.get("/billing-review/mapping", headers=VIEWER).text
    assert page.count('data-testid="read-only"') == 1
    assert "Read only" in page
    # The page still carries the user's form token: whether a POST is allowed is the route's to say.
    done = client.post(
        "/billing-review/quarantine/1",
        data={"action": "resolve", "csrf_token": _token(page)},
        headers=VIEWER,
        follow_redirects=False,
    )
    assert done.status_code == 403


def test_an_editor_is_offered_the_quarantine_actions_only(site: tuple[TestClient, dict[str, int]]) -> None:
    client, rows = site
    offered = _offered(client, rows, EDITOR)
    every = set().union(*offered.values())
    assert QUARANTINE_ACTIONS <= every
    assert every <= QUARANTINE_ACTIONS, every - QUARANTINE_ACTIONS
    assert "/quarantine/<id>" in offered[f"/quarantine/{rows['no_live_addition']}"]
    assert 'data-testid="read-only"' in client.get("/billing-review/overrides", headers=EDITOR).text


def test_a_mapper_is_offered_every_action(site: tuple[TestClient, dict[str, int]]) -> None:
    client, rows = site
    offered = _offered(client, rows, MAPPER)
    assert set().union(*offered.values()) == QUARANTINE_ACTIONS | MAPPING_ACTIONS | {
        "approve link",
        "picker button",
    }
    assert 'data-testid="read-only"' not in client.get("/billing-review/quarantine", headers=MAPPER).text


def test_stand_in_reviewers_without_flags_are_offered_everything() -> None:
    """Reviewer's areas default to every one: a stand-in that does not tell users apart keeps its forms
    (the routes refuse what it may not do)."""
    reviewer = Reviewer("alice", "alice")
    assert (reviewer.may_act, reviewer.may_map) == (True, True)
