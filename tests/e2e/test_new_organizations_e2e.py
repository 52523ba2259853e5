"""New organizations through the real DAG (issue 11 §7; docs/contract.md §1, §4): `dag.test()` runs
record them, `record_run` emits the asset event `billing_sync://new_organizations` into Airflow's
metadata database with their ids in its extra, and the mapping page marks them new (FastAPI's
TestClient, as tests/helpers/review_app.py); a re-run of the date finds nothing new."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape

from billing_sandbox.generate import generate
from billing_sync import store
from billing_sync.names import NEW_ORGANIZATIONS_ASSET
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth
from tests.helpers.review_app import ALICE, editor, reader

pytestmark = pytest.mark.e2e

BILLING_DATE = "2026-11-01"


def asset_events(run_id: str) -> list[dict]:
    """The events of the new-organizations asset that the DAG run emitted, from Airflow's metadata DB."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.execute(
            sa.select(AssetEvent.extra, AssetEvent.source_task_id, AssetEvent.source_dag_id)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == NEW_ORGANIZATIONS_ASSET, AssetEvent.source_run_id == run_id)
        ).all()
    return [{"extra": e, "task": t, "dag": d} for e, t, d in rows]


@pytest.fixture
def review(tmp_path: Path) -> Iterator:
    """GET a review page (its HTML) on the billing database the DAG runs write (run_dag's)."""
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    auth = ReviewAuth(reader=reader, editor=editor, login_url=lambda nxt: f"/auth/login?next={quote(nxt)}")
    root = FastAPI()
    root.mount(
        "/billing-review",
        create_app(engine=engine, auth=auth, csrf_secret=b"test-secret", reports_root=tmp_path / "reports"),
    )
    with TestClient(root) as client:
        yield lambda path: client.get(f"/billing-review{path}", headers=ALICE).text
    engine.dispose()


def badges(html: str) -> set[int]:
    """The organizations the mapping page marks new (the rows holding a `new-badge`)."""
    return {
        int(org)
        for org, row in re.findall(r'<tr id="org-(\d+)"(.*?)</tr>', html, flags=re.S)
        if 'data-testid="new-badge"' in row
    }


def test_new_organizations_asset_event_and_mapping_badge(sandbox_factory, run_dag, review) -> None:
    scenario = generate(12, 5)
    invoice = max(scenario["huntress"]["invoices"], key=lambda i: i["created_at"])
    assert invoice["created_at"].startswith(BILLING_DATE), "the billing date's invoice is the newest: push"
    on_invoice = list(dict.fromkeys(line["organization_id"] for line in invoice["lines"]))
    sb = sandbox_factory(scenario)

    first = run_dag(sb, BILLING_DATE)
    assert first.state == "success"
    [event] = asset_events(first.run_id)
    assert (event["dag"], event["task"]) == ("huntress_connectwise_billing_sync", "record_run")
    assert event["extra"] == {
        "organization_ids": on_invoice,
        "billing_date": BILLING_DATE,
        "run_id": first.run_id,
        "tenant": "default",
        "mode": "push",
    }
    html = review("/mapping")
    listed = {int(org) for org in re.findall(r'<tr id="org-(\d+)"', html)}  # staged, some not invoiced
    assert badges(html) == set(on_invoice) & listed != set()
    assert (
        f'data-testid="new-count" title="on an invoice for the first time in this run">{len(badges(html))} new<'
        in html
    )

    # The run's page lists them too, names and ids.
    run_page = review(f"/runs/{quote(first.run_id, safe='')}")
    names = {o["id"]: o["name"] for o in scenario["huntress"]["organizations"]}
    section = run_page.split('data-testid="new-organizations"', 1)[1].split("</ul>", 1)[0]
    assert re.findall(r"#(\d+)</span>", section) == [str(o) for o in on_invoice]
    assert all(str(escape(names[o])) in section for o in on_invoice)  # escaped: one name is a <script>

    # The same date again: every organization was recorded by the first run.
    again = run_dag(sb, BILLING_DATE)
    assert again.state == "success"
    [event] = asset_events(again.run_id)
    assert event["extra"]["organization_ids"] == [] and event["extra"]["run_id"] == again.run_id
    assert badges(review("/mapping")) == set()
    assert 'data-testid="new-organizations"' not in review(f"/runs/{quote(again.run_id, safe='')}")
