"""Issue 22 §2 in the browser: a ConnectWise connection made through Airflow's own connection form,
its Test button against the sandbox (success in plain words), then with a wrong private key (a plain
failure that names no secret).

The real API server (Test enabled, as `make airflow` has it), the real sandbox, Chromium. Screenshots:
/tmp/shots/conn-*.png. The port is filled in because Airflow 3.3.2's Test button refuses a connection
without one (billing_sync.provider, PORT_HINT).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import DEMO_SCENARIO, Sandbox, migrate_airflow_db, start_sandbox
from tests.ui.conftest import Site, login, start_api_server, stop

pytestmark = [pytest.mark.browser, pytest.mark.integration]

SHOTS = Path("/tmp/shots")
CONN_ID = "connectwise_from_the_form"
WRONG_PRIVATE_KEY = "wrong_private_key_5150"
CLIENT_ID = "12345678-90ab-cdef-1234-567890abcdef"
TEST_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    scenario = json.loads(DEMO_SCENARIO.read_text())
    # Credentials long enough that finding one on the page would be a leak, not a word.
    scenario["connectwise"].update(
        public_key="public_key_value_1234", private_key="private_key_value_8765", client_id=CLIENT_ID
    )
    sb = start_sandbox(scenario, tmp_path_factory.mktemp("conn-form-sandbox"))
    yield sb
    sb.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("conn-form")
    migrate_airflow_db()
    proc, url, passwords, log, keys = start_api_server(tmp, {"AIRFLOW__CORE__TEST_CONNECTION": "Enabled"})
    try:
        yield Site(url, passwords, None, proc, log, keys)
    finally:
        stop(proc)


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"conn-{name}.png"), full_page=True)


def press_test(page: Any, title: str) -> str:
    """Press the connection's Test button in the list; the text of the toast with Airflow's `title`
    for the answer ("Test Connection Successful" or "…Failed", each pressed once here) and our
    message."""
    page.get_by_role("row").filter(has_text=CONN_ID).get_by_role("button", name="Test Connection").click()
    answer = page.locator("[data-scope=toast][data-part=root]").filter(has_text=title).first
    answer.wait_for(timeout=TEST_TIMEOUT_MS)
    return str(answer.inner_text())


def test_a_connectwise_connection_made_in_the_form_tests_in_plain_words(
    browser: Any, site: Site, sandbox: Sandbox
) -> None:
    cw = sandbox.scenario["connectwise"]
    sandbox_site = urlsplit(sandbox.connectwise_url)
    page = browser.new_context(viewport={"width": 1500, "height": 1100}).new_page()
    page.set_default_timeout(30_000)
    login(page, site, "reviewer", f"{site.url}/connections")

    page.get_by_role("button", name="Add Connection").click()
    form = page.get_by_role("dialog")
    form.get_by_label("Connection ID").fill(CONN_ID)
    kind = form.get_by_role("combobox")
    kind.click()
    kind.fill("ConnectWise")
    page.get_by_role("option", name="ConnectWise Manage").click()
    # The type's own form: the relabelled standard fields, login hidden (billing_sync.provider).
    form.get_by_label("Site URL").fill(f"{sandbox_site.scheme}://{sandbox_site.hostname}")
    form.get_by_label("Port").fill(str(sandbox_site.port))
    form.get_by_label("Private key").fill(cw["private_key"])
    assert form.get_by_label("Login").count() == 0
    shot(page, "form-standard")
    form.get_by_role("button", name="Extra Fields", exact=True).click()
    # The provider's conn-fields (rendered by Airflow's params form, whose labels name no input).
    form.locator("#element_company_id").fill(cw["company_id"])
    form.locator("#element_public_key").fill(cw["public_key"])
    form.locator("#element_client_id").fill(cw["client_id"])
    shot(page, "form-fields")
    form.get_by_role("button", name="Save").click()
    page.get_by_role("row").filter(has_text=CONN_ID).wait_for()

    message = press_test(page, "Test Connection Successful")
    shot(page, "test-success")
    assert "Authenticated as company demomsp on codebase v4_6_release/" in message, message

    # The same connection with a wrong private key, edited in the form.
    page.get_by_role("row").filter(has_text=CONN_ID).get_by_role("button", name="Edit Connection").click()
    form = page.get_by_role("dialog")
    form.get_by_label("Private key").fill(WRONG_PRIVATE_KEY)
    form.get_by_role("button", name="Save").click()
    form.wait_for(state="hidden")
    message = press_test(page, "Test Connection Failed")
    shot(page, "test-wrong-key")
    assert "refused the credentials for company demomsp" in message, message
    assert "check the public key and the private key" in message, message
    page_text = page.locator("body").inner_text()
    for secret in (WRONG_PRIVATE_KEY, cw["private_key"], cw["public_key"], cw["client_id"]):
        assert secret not in page_text
    page.context.close()
