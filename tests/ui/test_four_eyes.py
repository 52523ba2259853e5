"""Issue 19 §5, second bullet: the four-eyes rule, per tenant (`four_eyes` in its settings Variable).

Two tenants, the same rows in each: a held change of company 10's edr, a missing addition of
company 11's edr (decided by a `fixed 12` override), organization 1 mapped to company 10 by `mia`,
organization 2 to company 11 by `otto`, the override added by `olga`. North turns the rule on,
south leaves it off. With it on, whoever set up what a decision releases may not make it (403, a
sentence saying why and that another person must; nothing recorded), and the page disables the
button with the reason; another user may. With it off, anyone with the mapping right may.

Through the real review app (TestClient) on SQLite and PostgreSQL; the Variables through Airflow's
environment backend; users told apart by the stand-in auth of test_tenants_pages (user id
``<name>-id``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from billing_sync import frames, store, tenants
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth
from tests.helpers.approvals_db import seen_fields
from tests.helpers.two_tenants import EVERY_DAG, editor, mapper, reader, tenants_file

RUN, DAY = "scheduled__2026-12-01T00:00:00+00:00", "2026-12-01"
HELD, MISSING = "company:10:edr", "company:11:edr"


def user(name: str) -> dict[str, str]:
    return {"X-User": name, "X-Read": EVERY_DAG, "X-Act": EVERY_DAG, "X-Map": EVERY_DAG}


def fill_tenant(engine: Any, t: str) -> dict[str, int]:
    store.start_run(engine, RUN, DAY, 7001, "push", {"agreement_types": []}, tenant=t)
    active = {"agreementStatus": "Active", "cancelledFlag": False, "startDate": "2025-01-01T00:00:00Z"}
    agreements = [{**active, "id": 1580, "name": "Eleven MSA", "company": {"id": 11}}]
    store.write_frame(engine, RUN, "agreements", frames.agreements_frame(agreements), tenant=t)
    store.set_org_map(engine, 1, 10, None, "Mia", user_id="mia-id", tenant=t)
    store.set_org_map(engine, 2, 11, None, "Otto", user_id="otto-id", tenant=t)
    rule = store.add_override(
        engine, cw_company_id=11, product="edr", rule="fixed", quantity=12, user="Olga", user_id="olga-id", tenant=t
    )  # fmt: skip
    held = {"sync_key": HELD, "company_id": 10, "product": "edr", "agreement_id": 1, "addition_id": 2,
            "huntress_quantity": 60, "previous_quantity": 40.0}  # fmt: skip
    missing = {"sync_key": MISSING, "company_id": 11, "product": "edr", "huntress_quantity": 3,
               "override_id": rule["id"], "target": 12}  # fmt: skip
    store.upsert_quarantine(
        engine,
        RUN,
        DAY,
        [
            {"sync_key": HELD, "reason_code": "change_exceeds_limit", "cw_company_id": 10, "product": "edr",
             "detail": "trips the guard", "payload": held},
            {"sync_key": MISSING, "reason_code": "no_live_addition", "cw_company_id": 11, "product": "edr",
             "detail": "no live addition", "payload": missing},
        ],
        tenant=t,
    )  # fmt: skip
    store.finish_run(engine, RUN, "success", {}, {}, None, tenant=t)
    return {q["sync_key"]: q["id"] for q in store.list_quarantine(engine, status="open", tenant=t)}


class Site:
    def __init__(self, client: TestClient, engine: Any, rows: dict[str, dict[str, int]]) -> None:
        self.client, self.engine, self.rows = client, engine, rows

    def get(self, path: str, who: str) -> Any:
        return self.client.get(f"/billing-review{path}", headers=user(who))

    def post(self, t: str, path: str, data: dict[str, str], who: str) -> Any:
        token = re.search(
            r'name="csrf-token" content="([0-9a-f]+)"', self.get(f"/quarantine?tenant={t}", who).text
        )
        form = {**data, "csrf_token": token.group(1)}
        return self.client.post(
            f"/billing-review{path}?tenant={t}", data=form, headers=user(who), follow_redirects=False
        )

    def approve(self, t: str, key: str, who: str) -> Any:
        row = self.rows[t][key]
        shown = seen_fields(self.client, row, user(who), t)
        assert shown, "the form renders what it shows"
        extra = {"agreement_id": "1580"} if key == MISSING else {}
        return self.post(t, "/approvals", {"row_id": str(row), **shown, **extra}, who)

    def override(self, t: str, company: int, product: str, who: str) -> Any:
        form = {"company_id": str(company), "product": product, "rule": "minimum", "quantity": "50"}
        return self.post(t, "/overrides", form, who)

    def approvals(self, t: str) -> list[dict[str, Any]]:
        return store.list_approvals(self.engine, tenant=t)


@pytest.fixture
def site(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    monkeypatch.setenv(tenants.TENANTS_FILE_ENV, str(tenants_file(tmp_path / "tenants.json")))
    monkeypatch.setenv("AIRFLOW_VAR_BILLING_NORTH", '{"four_eyes": true}')
    monkeypatch.setenv("AIRFLOW_VAR_BILLING_SOUTH", "{}")
    engine = store.make_engine(db_url)
    rows = {t: fill_tenant(engine, t) for t in ("north", "south")}
    companies = frames.companies_frame([{"id": 10, "name": "Ten"}, {"id": 11, "name": "Eleven"}])
    for t in rows:  # what the overrides page checks a company against
        store.write_frame(engine, RUN, "companies", companies, tenant=t)
    app = FastAPI()
    app.mount(
        "/billing-review",
        create_app(
            engine=engine, auth=ReviewAuth(reader=reader, editor=editor, mapper=mapper), csrf_secret=b"k"
        ),
    )
    with TestClient(app) as client:
        yield Site(client, engine, rows)
    engine.dispose()


def test_the_mapper_of_the_company_may_not_approve_its_held_change_another_may(site: Site) -> None:
    refused = site.approve("north", HELD, "mia")
    assert refused.status_code == 403
    why = refused.json()["detail"]
    assert "four-eyes rule is on" in why and "mapped organization 1 to company 10" in why
    assert "another person must" in why
    assert site.approvals("north") == []
    # The page says so and offers no button that works.
    form = site.get(f"/approvals/new?row={site.rows['north'][HELD]}&tenant=north", "mia").text
    assert 'data-testid="four-eyes"' in form and "another person must" in form
    assert re.search(r'<button type="submit" name="rerun" value="" class="primary" disabled>', form)
    listed = site.get("/approvals?tenant=north", "mia").text
    assert f'data-testid="four-eyes-{site.rows["north"][HELD]}"' in listed
    assert f'data-testid="approve-{site.rows["north"][HELD]}"' not in listed

    assert "approval=approved" in site.approve("north", HELD, "bea").headers["location"]
    (approval,) = site.approvals("north")
    assert (approval["approved_by_id"], approval["to_quantity"]) == ("bea-id", 60)


def test_a_new_addition_is_refused_to_its_mapper_and_to_the_overrides_author(site: Site) -> None:
    for who, did in (("otto", "mapped organization 2 to company 11"), ("olga", "added override")):
        refused = site.approve("north", MISSING, who)
        assert refused.status_code == 403 and did in refused.json()["detail"], who
    assert site.approvals("north") == []
    assert "approval=approved" in site.approve("north", MISSING, "mia").headers["location"]
    (approval,) = site.approvals("north")
    assert (approval["kind"], approval["to_quantity"], approval["approved_by_id"]) == (
        "create_addition",
        12,
        "mia-id",
    )


def test_an_override_on_a_held_key_is_refused_to_the_mapper(site: Site) -> None:
    refused = site.override("north", 10, "edr", "mia")
    assert refused.status_code == 403
    assert "mapped organization 1 to company 10" in refused.json()["detail"]
    assert [o["cw_company_id"] for o in store.list_overrides(site.engine, tenant="north")] == [11]
    # Not a held key (no open row of company 10's sat): nothing is released, the mapper may.
    assert "done=override_added" in site.override("north", 10, "sat", "mia").headers["location"]
    # Another user may decide the held key.
    assert "done=override_added" in site.override("north", 10, "edr", "bea").headers["location"]


def test_with_the_rule_off_the_same_user_may(site: Site) -> None:
    assert "approval=approved" in site.approve("south", HELD, "mia").headers["location"]
    assert "approval=approved" in site.approve("south", MISSING, "olga").headers["location"]
    assert "done=override_added" in site.override("south", 10, "itdr", "mia").headers["location"]
    assert {a["approved_by_id"] for a in site.approvals("south")} == {"mia-id", "olga-id"}
    assert 'data-testid="four-eyes' not in site.get("/approvals?tenant=south", "mia").text
    # North's rule stays north's: mia is still refused there.
    assert site.approve("north", HELD, "mia").status_code == 403


def test_a_variable_that_does_not_parse_refuses_the_decision(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_VAR_BILLING_NORTH", '{"four_eyes": "yes"}')
    refused = site.approve("north", HELD, "bea")
    assert refused.status_code == 403 and "billing_north" in refused.json()["detail"]
    assert site.approvals("north") == []
