"""Issue 21 §3's done-when: through a real Airflow login (the API server serving the plugin), one
user per power on each of two tenants sees and does exactly what the power grants, on its tenant
only, and is refused the rest by the server (a POST with a valid form token).

The tenants' Variables grant every action area to roles of their own (``north_quarantine``,
``south_settings``, ...); the users are SimpleAuthManager viewers (they may read both tenants' DAGs)
carrying one such role each, FAB-style, through tests/helpers/roles_auth_manager.py. The billing
database is test_tenants_pages.py's two tenants.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from billing_sync import store, tenants
from billing_sync.review import airflow_runs
from billing_sync.review.powers import LABELS
from tests.conftest import ROOT, migrate_airflow_db
from tests.helpers.two_tenants import fill, tenants_file
from tests.ui.conftest import _wait_healthy, billing_env, free_port, login, screenshot, stop

pytestmark = pytest.mark.browser

AREAS = ("quarantine", "mappings", "approvals", "overrides", "settings", "apply")
TENANT_IDS = ("north", "south")
DAY = "2026-11-01"
ADMIN = "root"


def user_of(tenant: str, area: str) -> str:
    return f"{tenant}_{area}"  # the user's name and its one FAB-style role


def powers_variable(tenant: str) -> str:
    return json.dumps({"powers": {area: [user_of(tenant, area)] for area in AREAS}})


@dataclass
class PowersSite:
    url: str
    passwords: dict[str, str]
    ids: dict[str, dict[str, int]]
    engine: Any

    def page(self, path: str, tenant: str) -> str:
        return f"{self.url}/billing-review{path}?tenant={tenant}"

    def admin(self) -> dict[str, str]:
        done = httpx.post(
            f"{self.url}/auth/token", json={"username": ADMIN, "password": self.passwords[ADMIN]}
        )
        assert done.status_code == 201, done.text
        return {"Authorization": f"Bearer {done.json()['access_token']}"}

    def variable(self, key: str) -> dict[str, Any]:
        got = httpx.get(f"{self.url}/api/v2/variables/{key}", headers=self.admin())
        assert got.status_code == 200, got.text
        return json.loads(got.json()["value"])


@pytest.fixture(scope="module")
def powers_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PowersSite]:
    tmp = tmp_path_factory.mktemp("powers")
    migrate_airflow_db()
    engine = store.make_engine(f"sqlite:///{tmp / 'billing.db'}")
    ids = fill(engine, tmp / "reports")
    users = {user_of(t, a): "viewer" for t in TENANT_IDS for a in AREAS}
    passwords = {u: secrets.token_urlsafe(12) for u in [*users, ADMIN]}
    (tmp / "passwords.json").write_text(json.dumps(passwords))
    roles = {u: [u] for u in users}
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_VAR_BILLING_")},
        **billing_env(tmp),
        tenants.TENANTS_FILE_ENV: str(tenants_file(tmp / "tenants.json")),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "AIRFLOW__CORE__AUTH_MANAGER": "tests.helpers.roles_auth_manager.RolesAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(
            [f"{u}:{r}" for u, r in users.items()] + [f"{ADMIN}:admin"]
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp / "passwords.json"),
        "AIRFLOW__API__SECRET_KEY": secrets.token_hex(16),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
        "BILLING_TEST_USER_ROLES": json.dumps(roles),
    }
    log = tmp / "api-server.log"
    airflow = Path(sys.executable).with_name("airflow")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log)
        site = PowersSite(url, passwords, ids, engine)
        admin = site.admin()
        for t in TENANT_IDS:  # in the metadata database: the settings page saves only there
            key = f"billing_{t}"
            httpx.delete(f"{url}/api/v2/variables/{key}", headers=admin)
            made = httpx.post(
                f"{url}/api/v2/variables", json={"key": key, "value": powers_variable(t)}, headers=admin
            )
            assert made.status_code == 201, made.text
        yield site
        for t in TENANT_IDS:  # the worker's metadata database outlives this module: leave it as found
            httpx.delete(f"{url}/api/v2/variables/billing_{t}", headers=site.admin())
    finally:
        stop(proc)
        engine.dispose()


def attempts(site: PowersSite, tenant: str) -> dict[str, tuple[str, dict[str, str]]]:
    """One POST of each area on `tenant`'s rows, as its page's form sends it."""
    ids = site.ids[tenant]
    return {
        "quarantine": (
            f"/quarantine/{ids['unmapped_organization']}",
            {"action": "dismiss", "note": "checked", "back": "row"},
        ),
        "mappings": ("/mapping", {"organization_id": "1", "company_id": "10"}),
        "approvals": (f"/approvals/{ids['approval']}/revoke", {}),
        "overrides": (f"/overrides/{ids['override']}/retire", {}),
        "settings": ("/settings/preview", {"max_change_units": "12"}),
        "apply": ("/rerun", {"billing_date": DAY, "back": "mapping"}),
    }


def offered(page: Any, site: PowersSite, tenant: str) -> set[str]:
    """The areas whose controls the pages show this user on `tenant`."""
    ids = site.ids[tenant]
    found = set()
    page.goto(site.page("/quarantine", tenant) + "&view=rows")
    if page.get_by_test_id(f"actions-{ids['unmapped_organization']}").count():
        found.add("quarantine")
    if page.locator('form[action*="/rerun"]').count():
        found.add("apply")
    page.goto(site.page("/mapping", tenant))
    if page.locator('form[action*="/mapping/2/delete"]').count():
        found.add("mappings")
    page.goto(site.page("/approvals", tenant))
    if page.locator(f'form[action*="/approvals/{ids["approval"]}/revoke"]').count():
        found.add("approvals")
    page.goto(site.page("/overrides", tenant))
    if page.get_by_role("button", name="Add override").count():
        found.add("overrides")
    page.goto(site.page("/settings", tenant))
    if page.get_by_test_id("preview-button").count():
        found.add("settings")
    return found


def post(page: Any, site: PowersSite, tenant: str, path: str, form: dict[str, str]) -> Any:
    """A POST of one of our forms from this signed-in browser: a valid form token, same origin."""
    page.goto(site.page("/quarantine", tenant))
    token = page.locator("meta[name=csrf-token]").get_attribute("content")
    return page.context.request.post(
        site.page(path, tenant),
        form={**form, "csrf_token": token},
        headers={"Origin": site.url, "Sec-Fetch-Site": "same-origin", "Accept": "application/json"},
        max_redirects=0,
    )


def refusal(area: str, tenant: str) -> str:
    return f"This needs the {LABELS[area]} power on tenant {tenant}; ask an administrator"


@pytest.mark.parametrize("tenant", TENANT_IDS)
@pytest.mark.parametrize("area", AREAS)
def test_each_power_grants_its_area_on_its_tenant_only(
    browser: Any, powers_site: PowersSite, tenant: str, area: str
) -> None:
    site, user = powers_site, user_of(tenant, area)
    other_tenant = next(t for t in TENANT_IDS if t != tenant)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        login(page, site, user, site.page("/quarantine", tenant))  # type: ignore[arg-type]
        assert offered(page, site, tenant) == {area}
        assert page.get_by_role("link", name="Settings").count() == 1, "the settings page is every reader's"
        assert offered(page, site, other_tenant) == set()
        screenshot(page, f"powers-{user}")

        tried = attempts(site, tenant)
        for other, (path, form) in tried.items():
            if other == area:
                continue
            refused = post(page, site, tenant, path, form)
            assert (refused.status, refused.json()["detail"]) == (403, refusal(other, tenant)), other
        path, form = attempts(site, other_tenant)[area]
        refused = post(page, site, other_tenant, path, form)
        assert (refused.status, refused.json()["detail"]) == (403, refusal(area, other_tenant))

        path, form = tried[area]
        if area == "settings":
            change_the_guard_limit(page, site, tenant)
        elif area == "apply":
            # Past the power: the trigger is Airflow's, which refuses a viewer (it proves the
            # request got past this server's check, to the DAG's runs).
            done = post(page, site, tenant, path, form)
            assert done.status == 403 and done.json()["detail"].startswith(
                airflow_runs.not_allowed(tenants.dag_id_of(tenant))
            )
        else:
            done = post(page, site, tenant, path, form)
            assert done.status == 303, (area, done.status, done.text())
    finally:
        context.close()


def change_the_guard_limit(page: Any, site: PowersSite, tenant: str) -> None:
    """The settings power alone changes settings: preview, then save to the tenant's Variable."""
    from playwright.sync_api import expect

    page.goto(site.page("/settings", tenant))
    page.locator('tr[data-key="max_change_units"] input[name="max_change_units"]').fill("25")
    page.get_by_test_id("preview-button").click()
    expect(page.get_by_test_id("diff")).to_contain_text("max_change_units")
    page.get_by_test_id("save").click()
    expect(page.get_by_role("status").first).to_contain_text("Settings saved")
    saved = site.variable(f"billing_{tenant}")
    assert saved["max_change_units"] == 25
    assert saved["powers"] == json.loads(powers_variable(tenant))["powers"], "the powers stay as they were"
