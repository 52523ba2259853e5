"""Issue 21 §2 through Chromium and the real Airflow API server: the settings page changes a
product's catalog items and the guard limit, shows the diff, saves to the Variable in Airflow's
metadata database, and the next run's `resolve` takes the new values; a bad value is refused beside
its field. A viewer sees the settings and no form.

One module-scoped server over a billing database filled by a real DAG run of generate(40, 7)
(tests/ui/conftest.py). The Variable is deleted afterwards: other modules of this test process
share the metadata database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from billing_sync import steps, store
from tests.ui.conftest import CONFIG_VARIABLE, Site, login, screenshot

pytestmark = pytest.mark.browser


def variable(site: Site) -> str | None:
    """The Variable as the API server has it, through its REST API (it decrypts with its own Fernet key,
    which this process may not share: it read its config before the server wrote airflow.cfg)."""
    admin = {"Authorization": f"Bearer {site.token('reviewer')}"}
    got = httpx.get(f"{site.url}/api/v2/variables/{CONFIG_VARIABLE}", headers=admin, timeout=30)
    if got.status_code == 404:
        return None
    assert got.status_code == 200, got.text
    return str(got.json()["value"])


@pytest.fixture
def clean_variable(site: Site) -> Iterator[None]:
    from airflow.models.variable import Variable

    Variable.delete(CONFIG_VARIABLE)
    try:
        yield
    finally:
        Variable.delete(CONFIG_VARIABLE)


def test_change_products_and_guard_see_the_diff_save_and_the_next_run_resolves_with_them(
    page: Any, site: Site, clean_variable: None
) -> None:
    from playwright.sync_api import expect

    page.goto(site.page("/settings"))
    expect(page.locator("h1")).to_have_text("Settings")
    expect(page.get_by_test_id("source-max_change_units")).to_have_text("default")
    # The sandbox is gone once the DAG run is done, so ConnectWise cannot be read: the page says so
    # and the catalog items the DAG run read are offered for the products.
    expect(page.get_by_test_id("catalog-note")).to_contain_text("type identifiers by hand")
    assert "HUNTRESS-EDR" in page.locator("#catalog-items option").evaluate_all("os => os.map(o => o.value)")
    screenshot(page, "settings")

    # A bad value: refused beside its field, everything typed kept, nothing saved.
    page.locator('input[name="max_change_units"]').fill("-3")
    page.locator('input[name="products.edr"]').fill("HUNTRESS-EDR, HUNTRESS-EDR-INFO")
    page.get_by_test_id("preview-button").click()
    expect(page.get_by_test_id("error-max_change_units")).to_have_text("must be a non-negative integer")
    expect(page.locator('input[name="products.edr"]')).to_have_value("HUNTRESS-EDR, HUNTRESS-EDR-INFO")
    expect(page.get_by_test_id("preview")).to_have_count(0)
    assert variable(site) is None

    page.locator('input[name="max_change_units"]').fill("40")
    page.get_by_test_id("preview-button").click()
    diff = page.get_by_test_id("diff")
    expect(diff.locator('tr[data-key="max_change_units"]')).to_contain_text("10 (default)")
    expect(diff.locator('tr[data-key="max_change_units"]')).to_contain_text("40")
    expect(diff.locator('tr[data-key="products"]')).to_contain_text("edr: HUNTRESS-EDR, HUNTRESS-EDR-INFO")
    expect(diff.locator("tr")).to_have_count(3)  # the header, and the two settings changed
    screenshot(page, "settings-diff")
    assert variable(site) is None  # a preview saves nothing

    page.get_by_test_id("save").click()
    expect(page.get_by_test_id("notice")).to_contain_text("Settings saved")
    expect(page.get_by_test_id("source-max_change_units")).to_have_text("Variable")
    assert json.loads(variable(site) or "{}") == {
        "max_change_units": 40,
        "products": {
            "edr": ["HUNTRESS-EDR", "HUNTRESS-EDR-INFO"],
            "itdr": "HUNTRESS-ITDR",
            "sat": "HUNTRESS-SAT",
            "siem": "HUNTRESS-SIEM",
        },
    }
    (decision,) = [d for d in store.list_decisions(site.engine, tenant="default") if d["kind"] == "settings"]
    assert (decision["actor_name"], decision["after"]["max_change_units"]) == ("reviewer", 40)

    # The next run's first task reads the Variable as the DAG does and resolves with the new values.
    ref = steps.resolve(
        site.engine, "manual__settings_next", date(2026, 12, 1), variable(site), {}, "default"
    )
    assert ref["settings"]["max_change_units"] == 40
    assert ref["settings"]["products"]["edr"] == ["HUNTRESS-EDR", "HUNTRESS-EDR-INFO"]
    page.goto(site.page("/runs/manual__settings_next"))
    table = page.get_by_test_id("run-settings")
    expect(table.locator('tr[data-key="max_change_units"]')).to_contain_text("40")
    expect(table.locator("tr[data-changed]")).to_have_count(0)  # what it resolved with is what is in force
    # The run of before (the guard at 10) marks the change.
    first = store.list_runs(site.engine, limit=10, tenant="default")[-1]["run_id"]
    page.goto(site.page(f"/runs/{quote(first, safe='')}"))
    expect(page.get_by_test_id("run-settings").locator('tr[data-key="max_change_units"]')).to_have_attribute(
        "data-changed", "true"
    )


def test_a_viewer_sees_the_settings_and_no_form(browser: Any, site: Site) -> None:
    from playwright.sync_api import expect

    context = browser.new_context()
    try:
        page = context.new_page()
        login(page, site, "watcher", site.page("/settings"))
        expect(page.locator("h1")).to_have_text("Settings")
        expect(page.get_by_test_id("value-max_change_units")).to_be_visible()
        expect(page.get_by_test_id("preview-button")).to_have_count(0)
        expect(page.locator('input[name="max_change_units"]')).to_have_count(0)
    finally:
        context.close()
