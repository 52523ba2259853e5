"""Issue 20 §3 in real headless Chromium on the real API server: the overrides page's company is
picked by name with the mapping picker's type-ahead (under the pages' strict CSP), the match fills
the field with "Name #id" without submitting, and the override is added for that company."""

from __future__ import annotations

from typing import Any

import pytest

from billing_sync import store
from tests.ui.conftest import INTENDED_COMPANY, Site, screenshot

pytestmark = pytest.mark.browser


def test_an_override_company_is_picked_by_name_with_the_type_ahead(page: Any, site: Site) -> None:
    from playwright.sync_api import expect

    from billing_sync.review.queries.companies import staged_companies

    _, companies = staged_companies(site.engine, tenant="default")
    name = next(c["name"] for c in companies if c["id"] == INTENDED_COMPANY)
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        page.goto(site.page("/overrides"))
        form = page.get_by_test_id("add-override")
        field = form.get_by_label("Company: type a name, then pick")
        expect(field).to_have_attribute("data-picker-ready", "")  # the script ran
        field.press_sequentially(name[:6], delay=30)
        choice = page.get_by_role("button", name=f"Use this company: {name} #{INTENDED_COMPANY}", exact=True)
        expect(choice).to_be_visible()
        screenshot(page, "override-type-ahead")
        choice.click()
        expect(field).to_have_value(f"{name} #{INTENDED_COMPANY}")  # filled in, nothing submitted yet
        assert store.list_overrides(site.engine, tenant="default") == []
        form.locator("select[name=rule]").select_option("exclude")
        form.get_by_role("button", name="Add override", exact=True).click()
        expect(page.get_by_test_id("notice")).to_contain_text("added")
        [row] = store.list_overrides(site.engine, tenant="default")
        assert (row["cw_company_id"], row["rule"]) == (INTENDED_COMPANY, "exclude")
        assert refused == []
    finally:
        for row in store.list_overrides(site.engine, tenant="default"):
            store.retire_override(site.engine, row["id"], tenant="default", user="test", user_id="test")
