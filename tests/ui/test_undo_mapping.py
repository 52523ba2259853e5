"""Issue 20 §3 "A mapping can be undone", with FastAPI's TestClient: the flash after mapping an
organization offers Undo, which restores the mapping it replaced (or removes a new one), recorded in
the decision history as any map / unmap is; an Undo that no longer matches the mapping changes
nothing."""

from __future__ import annotations

import re

from billing_sync import store
from tests.helpers.review_app import App


def mapped(app: App) -> dict[int, int]:  # noqa: F811
    return {
        r["huntress_organization_id"]: r["cw_company_id"]
        for r in store.list_org_map(app.engine, tenant="default")
    }


def undo_offer(app: App, location: str) -> dict[str, str]:  # noqa: F811
    """The Undo form the page after the redirect shows: its action and hidden fields."""
    html = app.get(location.removeprefix("/billing-review")).text
    form = re.search(r'<form[^>]*data-testid="undo-mapping"[^>]*>.*?</form>', html, re.S)
    assert form is not None, "no Undo offered"
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(0)))
    fields["action"] = re.search(r'action="([^"]+)"', form.group(0)).group(1)  # type: ignore[union-attr]
    return fields


def undo(app: App, offer: dict[str, str]):  # noqa: ANN201, F811
    path = offer.pop("action").removeprefix("/billing-review")
    offer.pop("csrf_token", None)
    return app.post(path, offer)


def test_undoing_a_new_mapping_removes_it_as_an_unmap(app: App) -> None:  # noqa: F811
    done = app.post("/mapping", {"organization_id": "2", "company_id": "10"})
    assert mapped(app) == {2: 10}
    back = undo(app, undo_offer(app, done.headers["location"]))
    assert back.status_code == 303 and "done=unmapped" in back.headers["location"]
    assert mapped(app) == {}
    kinds = [d["kind"] for d in store.list_decisions(app.engine, tenant="default", organization_id=2)]
    assert kinds[:2] == ["unmap", "map"]


def test_undoing_a_remapping_restores_the_company_it_replaced(app: App) -> None:  # noqa: F811
    app.post("/mapping", {"organization_id": "2", "company_id": "10"})
    done = app.post("/mapping", {"organization_id": "2", "company_id": "30", "back": "status=open"})
    assert "/quarantine?" in done.headers["location"]
    back = undo(app, undo_offer(app, done.headers["location"]))
    assert "done=mapped" in back.headers["location"] and "/quarantine?" in back.headers["location"]
    assert mapped(app) == {2: 10}
    kinds = [d["kind"] for d in store.list_decisions(app.engine, tenant="default", organization_id=2)]
    assert kinds[:3] == ["map", "map", "map"]
    # after the undo, no Undo of the undo is offered on its flash (it is not a fresh mapping)
    assert (
        'data-testid="undo-mapping"'
        not in app.get(back.headers["location"].removeprefix("/billing-review")).text
    )


def test_an_undo_that_no_longer_matches_changes_nothing(app: App) -> None:  # noqa: F811
    done = app.post("/mapping", {"organization_id": "2", "company_id": "10"})
    offer = undo_offer(app, done.headers["location"])
    app.post("/mapping", {"organization_id": "2", "company_id": "30"})  # someone mapped it again since
    back = undo(app, offer)
    assert "error=undo_stale" in back.headers["location"]
    assert mapped(app) == {2: 30}
    page = app.get(back.headers["location"].removeprefix("/billing-review")).text
    assert "changed since" in page
