"""Issue 10 §5 at the level of the app: changing who is billed takes more than deciding a quarantine
row, every decision records the user's id beside the name, and the shared dependencies are the
ones `deps` names (so tests and the API server swap them the same way). The real Airflow auth
manager deciding these is in test_browser.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import HTTPException

from billing_sync import store
from billing_sync.config import load_settings
from billing_sync.errors import ConfigError
from billing_sync.review import deps
from billing_sync.review.powers import holds_role
from billing_sync.review.security import Reviewer, role_names
from tests.helpers.review_roles import EDITOR, MAPPER, VIEWER, Client


def test_an_editor_decides_quarantine_rows_but_not_who_pays(roles_site: Client) -> None:
    assert roles_site.post("/quarantine/1", {"action": "dismiss", "note": "ok"}, EDITOR).status_code == 303
    row = store.get_quarantine(roles_site.engine, 1, tenant="default")
    assert (row["resolved_by"], row["resolved_by_id"]) == ("Erin Editor", "11")

    assert (
        roles_site.post("/mapping", {"organization_id": "2", "company_id": "10"}, EDITOR).status_code == 403
    )
    store.set_org_map(roles_site.engine, 2, 10, None, "someone", tenant="default")
    assert roles_site.post("/mapping/2/delete", {}, EDITOR).status_code == 403
    assert [r["created_by"] for r in store.list_org_map(roles_site.engine, tenant="default")] == ["someone"]


def test_a_mapper_changes_who_pays_and_is_recorded_by_id(roles_site: Client) -> None:
    done = roles_site.post("/mapping", {"organization_id": "2", "company_id": "10"}, MAPPER)
    location = done.headers["location"]
    assert "done=mapped&id=2" in location and location.endswith("#org-2")  # (and the undo's fields)
    [row] = store.list_org_map(roles_site.engine, tenant="default")
    assert (row["created_by"], row["created_by_id"]) == ("Max Mapper", "12")
    assert "(id 12)" in roles_site.client.get("/billing-review/mapping", headers=MAPPER).text
    assert "done=unmapped" in roles_site.post("/mapping/2/delete", {}, MAPPER).headers["location"]


def test_mapping_forms_need_the_csrf_token_too(roles_site: Client) -> None:
    bare = roles_site.client.post(
        "/billing-review/mapping", data={"organization_id": "2", "company_id": "10"}, headers=MAPPER
    )
    assert bare.status_code == 403
    assert store.list_org_map(roles_site.engine, tenant="default") == []


def test_a_viewer_is_refused_everything_but_reading(roles_site: Client) -> None:
    assert roles_site.client.get("/billing-review/mapping", headers=VIEWER).status_code == 200
    for path, form in [
        ("/quarantine/1", {"action": "resolve"}),
        ("/mapping", {"organization_id": "2", "company_id": "10"}),
        ("/mapping/2/delete", {}),
    ]:
        assert roles_site.post(path, form, VIEWER).status_code == 403, path


def test_the_dependencies_are_overridable_by_their_deps_keys(roles_site: Client) -> None:
    def nobody() -> Reviewer:
        raise HTTPException(403, "Forbidden by the test")

    roles_site.sub.dependency_overrides[deps.current_mapper] = nobody
    refused = roles_site.post("/mapping", {"organization_id": "2", "company_id": "10"}, MAPPER)
    assert (refused.status_code, refused.json()["detail"]) == (403, "Forbidden by the test")
    assert roles_site.post("/quarantine/1", {"action": "resolve"}, MAPPER).status_code == 303


def test_an_app_without_auth_wiring_lets_nobody_in(roles_site: Client) -> None:
    roles_site.sub.dependency_overrides.clear()
    assert roles_site.client.get("/billing-review/quarantine", headers=MAPPER).status_code == 403


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
