"""Issue 10 §5 at the level of the app: changing who is billed takes more than deciding a quarantine
row, every decision records the user's id beside the name, and the shared dependencies are the
ones `deps` names (so tests and the API server swap them the same way). The real Airflow auth
manager deciding these is in test_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from billing_sync import store
from billing_sync.config import ConfigError, load_settings
from billing_sync.review import deps
from billing_sync.review.app import create_app
from billing_sync.review.powers import holds_role
from billing_sync.review.security import ReviewAuth, Reviewer, role_names
from tests.ui.test_review_app import fill

EDITOR = {"X-User": "Erin Editor", "X-User-Id": "11", "X-Role": "editor"}
MAPPER = {"X-User": "Max Mapper", "X-User-Id": "12", "X-Role": "mapper"}
VIEWER = {"X-User": "Vic Viewer", "X-User-Id": "13"}


def _reviewer(request: Request) -> Reviewer:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(401, "Not authenticated")
    return Reviewer(user, request.headers.get("x-user-id") or user)


def reader(request: Request) -> Reviewer:
    return _reviewer(request)


def editor(request: Request) -> Reviewer:  # acts on runs: editors and mappers
    if request.headers.get("x-role") not in ("editor", "mapper"):
        raise HTTPException(403, "Forbidden")
    return _reviewer(request)


def mapper(request: Request) -> Reviewer:  # may also change who pays
    if request.headers.get("x-role") != "mapper":
        raise HTTPException(403, "Forbidden")
    return _reviewer(request)


class Client:
    def __init__(self, client: TestClient, sub: FastAPI, engine: object) -> None:
        self.client, self.sub, self.engine = client, sub, engine

    def token(self, headers: dict[str, str]) -> str:
        html = self.client.get("/billing-review/quarantine", headers=headers).text
        return re.search(r'name="csrf_token" value="([0-9a-f]+)"', html).group(1)

    def post(self, path: str, data: dict[str, str], headers: dict[str, str]):  # noqa: ANN201
        form = {**data, "csrf_token": self.token(headers)}
        return self.client.post(f"/billing-review{path}", data=form, headers=headers, follow_redirects=False)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Client]:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    fill(engine, tmp_path / "reports")
    auth = ReviewAuth(reader=reader, editor=editor, mapper=mapper)
    sub = create_app(engine=engine, auth=auth, csrf_secret=b"k", reports_root=tmp_path / "reports")
    root = FastAPI()
    root.mount("/billing-review", sub)
    with TestClient(root) as client:
        yield Client(client, sub, engine)
    engine.dispose()


def test_an_editor_decides_quarantine_rows_but_not_who_pays(site: Client) -> None:
    assert site.post("/quarantine/1", {"action": "dismiss", "note": "ok"}, EDITOR).status_code == 303
    row = store.get_quarantine(site.engine, 1, tenant="default")
    assert (row["resolved_by"], row["resolved_by_id"]) == ("Erin Editor", "11")

    assert site.post("/mapping", {"organization_id": "2", "company_id": "10"}, EDITOR).status_code == 403
    store.set_org_map(site.engine, 2, 10, None, "someone", tenant="default")
    assert site.post("/mapping/2/delete", {}, EDITOR).status_code == 403
    assert [r["created_by"] for r in store.list_org_map(site.engine, tenant="default")] == ["someone"]


def test_a_mapper_changes_who_pays_and_is_recorded_by_id(site: Client) -> None:
    done = site.post("/mapping", {"organization_id": "2", "company_id": "10"}, MAPPER)
    location = done.headers["location"]
    assert "done=mapped&id=2" in location and location.endswith("#org-2")  # (and the undo's fields)
    [row] = store.list_org_map(site.engine, tenant="default")
    assert (row["created_by"], row["created_by_id"]) == ("Max Mapper", "12")
    assert "(id 12)" in site.client.get("/billing-review/mapping", headers=MAPPER).text
    assert "done=unmapped" in site.post("/mapping/2/delete", {}, MAPPER).headers["location"]


def test_mapping_forms_need_the_csrf_token_too(site: Client) -> None:
    bare = site.client.post(
        "/billing-review/mapping", data={"organization_id": "2", "company_id": "10"}, headers=MAPPER
    )
    assert bare.status_code == 403
    assert store.list_org_map(site.engine, tenant="default") == []


def test_a_viewer_is_refused_everything_but_reading(site: Client) -> None:
    assert site.client.get("/billing-review/mapping", headers=VIEWER).status_code == 200
    for path, form in [
        ("/quarantine/1", {"action": "resolve"}),
        ("/mapping", {"organization_id": "2", "company_id": "10"}),
        ("/mapping/2/delete", {}),
    ]:
        assert site.post(path, form, VIEWER).status_code == 403, path


def test_the_dependencies_are_overridable_by_their_deps_keys(site: Client) -> None:
    def nobody() -> Reviewer:
        raise HTTPException(403, "Forbidden by the test")

    site.sub.dependency_overrides[deps.current_mapper] = nobody
    refused = site.post("/mapping", {"organization_id": "2", "company_id": "10"}, MAPPER)
    assert (refused.status_code, refused.json()["detail"]) == (403, "Forbidden by the test")
    assert site.post("/quarantine/1", {"action": "resolve"}, MAPPER).status_code == 303


def test_an_app_without_auth_wiring_lets_nobody_in(site: Client) -> None:
    site.sub.dependency_overrides.clear()
    assert site.client.get("/billing-review/quarantine", headers=MAPPER).status_code == 403


def test_role_names_of_each_auth_managers_users() -> None:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    assert role_names(SimpleAuthManagerUser(username="a", role="op")) == {"op"}
    assert role_names(SimpleAuthManagerUser(username="a", role=None)) == set()
    fab_like = SimpleNamespace(roles=[SimpleNamespace(name="Billing Admin"), SimpleNamespace(name="Op")])
    assert role_names(fab_like) == {"billing admin", "op"}
    assert role_names(SimpleNamespace(roles=["Admin"])) == {"admin"}
    assert role_names(object()) == set()
    assert holds_role(("ADMIN", "Billing Admin"), {"billing admin"})
    assert not holds_role(("ADMIN",), {"op", "user"})
    assert not holds_role(("ADMIN",), set())


def test_mapping_roles_setting() -> None:
    assert load_settings(None).mapping_roles == ()
    assert load_settings({"mapping_roles": [" Billing Admin ", "ADMIN"]}).mapping_roles == (
        "Billing Admin",
        "ADMIN",
    )
    for bad in ["ADMIN", [""], [1], {"ADMIN": True}]:
        with pytest.raises(ConfigError, match="mapping_roles"):
            load_settings({"mapping_roles": bad})
    s = load_settings({"mapping_roles": ["Op"]})
    assert load_settings(s.to_dict()) == s


def test_mapping_roles_are_read_from_the_variable_and_a_broken_one_reads_as_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through Airflow's own Variable.get (the environment backend answers first); a Variable that
    does not parse is None, which leaves every power but reading refused (test_powers.py)."""
    from billing_sync.review.security import tenant_settings

    monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", '{"mapping_roles": ["ADMIN"]}')
    found = tenant_settings("huntress_cw_billing_config")
    assert found is not None and found.mapping_roles == ("ADMIN",)
    for broken in ['{"mapping_roles": "ADMIN"}', "{not json", '{"billing_day": 99}']:
        monkeypatch.setenv("AIRFLOW_VAR_HUNTRESS_CW_BILLING_CONFIG", broken)
        assert tenant_settings("huntress_cw_billing_config") is None
