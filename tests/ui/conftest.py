"""UI fixtures: a billing database filled by a real DAG run, the real Airflow API server serving the
plugin, and Debian's Chromium driven by Playwright.

The browser tests are part of `make test`. Without Chromium at /usr/bin/chromium they fail (not
skip) and say how to install it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, Sandbox, migrate_airflow_db, start_sandbox
from tests.helpers.airflow_api import Airflow, serve_airflow
from tests.helpers.review_app import App, review_app
from tests.helpers.review_roles import Client, roles_site

DAG_ID = "huntress_connectwise_billing_sync"
CONFIG_VARIABLE = "huntress_cw_billing_config"
BILLING_DATE = "2026-11-01"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts" / "ui"
USERS = {
    "reviewer": "admin",
    "watcher": "viewer",
    "clerk": "user",
    "operator": "op",
}  # SimpleAuthManager user → role
SCRIPT_NAME = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"> Windmill'
XSS_ORG = 138  # planted "not_in_connectwise" organization of generate(40, 7): stays unmapped
UNMAPPED_ORG, INTENDED_COMPANY = 127, 440  # planted "name_mismatch": the company exists, named differently
SERVER_START_TIMEOUT_S = 180


# --- the billing database, filled by a real DAG run -------------------------------------------------


def ui_scenario() -> dict[str, Any]:
    """generate(40, 7) with one organization named like an XSS payload."""
    from billing_sandbox.generate import generate

    scenario = generate(40, 7)
    orgs = {o["id"]: o for o in scenario["huntress"]["organizations"]}
    assert XSS_ORG in orgs and UNMAPPED_ORG in orgs, (
        "generate(40, 7) no longer plants the organizations used here"
    )
    orgs[XSS_ORG]["name"] = SCRIPT_NAME
    return scenario


def billing_env(tmp: Path) -> dict[str, str]:
    return {
        "AIRFLOW_CONN_BILLING_SYNC_DB": json.dumps(
            {"conn_type": "generic", "extra": {"sqlalchemy_url": f"sqlite:///{tmp / 'billing.db'}"}}
        ),
        "BILLING_SYNC_REPORTS_DIR": str(tmp / "reports"),
    }


def run_billing_dag(sb: Sandbox, env: dict[str, str]) -> None:
    """`dag.test()` in this process, as tests/e2e's run_dag does, with env restored afterwards."""

    with pytest.MonkeyPatch.context() as mp:
        for key, value in {**env, **sb.connections()}.items():
            mp.setenv(key, value)
        from airflow.dag_processing.dagbag import DagBag

        dag = DagBag(dag_folder=str(ROOT / "dags")).dags[DAG_ID]
        run = dag.test(logical_date=datetime.fromisoformat(BILLING_DATE).replace(tzinfo=UTC))
    assert str(run.state).endswith("success"), f"the DAG run ended {run.state}"


# --- the real API server ------------------------------------------------------------------------------


@dataclass
class Site:
    url: str
    passwords: dict[str, str]
    engine: Any
    process: subprocess.Popen
    log: Path
    secrets: dict[str, str]  # the server's [api] secret_key and [api_auth] jwt_secret

    def page(self, path: str) -> str:
        return f"{self.url}/billing-review{path}"

    def token(self, user: str) -> str:
        done = httpx.post(f"{self.url}/auth/token", json={"username": user, "password": self.passwords[user]})
        assert done.status_code == 201, done.text
        return done.json()["access_token"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api_server(
    tmp: Path, env: dict[str, str]
) -> tuple[subprocess.Popen, str, dict[str, str], Path, dict[str, str]]:
    """`airflow api-server` on a free port, once it answers its health check."""
    server = launch_api_server(tmp, env)
    proc, url, _, log, _ = server
    _wait_healthy(proc, url, log)
    return server


def launch_api_server(
    tmp: Path, env: dict[str, str]
) -> tuple[subprocess.Popen, str, dict[str, str], Path, dict[str, str]]:
    """`airflow api-server` started, not yet waited for: its 12-16 s of start-up can overlap a DAG
    run (the review app opens the billing database on its first request, not at start)."""
    passwords = {user: secrets.token_urlsafe(12) for user in USERS}
    password_file = tmp / "passwords.json"
    password_file.write_text(json.dumps(passwords))
    port = free_port()
    keys = {"secret_key": secrets.token_hex(16), "jwt_secret": secrets.token_hex(32)}
    # The Variable comes from the metadata database only, so a test can set and delete it there.
    inherited = {k: v for k, v in os.environ.items() if k != f"AIRFLOW_VAR_{CONFIG_VARIABLE.upper()}"}
    server_env = {
        **inherited,
        **env,
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": ",".join(f"{u}:{r}" for u, r in USERS.items()),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
        "AIRFLOW__API__SECRET_KEY": keys["secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": keys["jwt_secret"],
    }
    log = tmp / "api-server.log"
    airflow = Path(sys.executable).with_name("airflow")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(airflow), "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=server_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its worker outlives a SIGTERM to the parent alone: stop the group
        )
    return proc, f"http://127.0.0.1:{port}", passwords, log, keys


def _wait_healthy(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"airflow api-server exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    stop(proc)
    pytest.fail(f"airflow api-server not healthy after {SERVER_START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL whatever is left of the group."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Sandbox → real DAG run → billing DB + reports; the real API server, started meanwhile, over them."""
    from billing_sync import store

    tmp = tmp_path_factory.mktemp("ui")
    env = billing_env(tmp)
    migrate_airflow_db()
    proc, url, passwords, log, keys = launch_api_server(tmp, env)  # starts while the DAG runs
    engine = store.make_engine(f"sqlite:///{tmp / 'billing.db'}")
    try:
        sb = start_sandbox(ui_scenario(), tmp)
        try:
            run_billing_dag(sb, env)
        finally:
            sb.stop()
        _wait_healthy(proc, url, log)
        yield Site(url, passwords, engine, proc, log, keys)
    finally:
        stop(proc)
        engine.dispose()


# --- the browser -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium is required for the UI tests and was not found at {CHROMIUM}. "
            "Install Debian's package: apt-get update && apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Any]:
    """A fresh browser context logged in as `reviewer` through Airflow's real login page."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(30_000)
    page = context.new_page()
    login(page, site, "reviewer", site.page("/quarantine"))
    try:
        yield page
    finally:
        context.close()


LOGIN_REDIRECT_TIMEOUT_MS = 10_000


def login(page: Any, site: Site, user: str, start: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.goto(start)
    page.wait_for_url("**/auth/login**")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(site.passwords[user])
    page.get_by_role("button", name="Sign in").click()
    try:
        page.wait_for_url(start, timeout=LOGIN_REDIRECT_TIMEOUT_MS)
    except PlaywrightTimeout:
        # Airflow's login page stores the token with document.cookie and navigates to `next` at
        # once; Chromium hands the cookie to its network service asynchronously, so on a loaded
        # machine the navigation can overtake it (seen: POST /auth/token 201, then GET `start`
        # without the cookie, sent back to the login page). With the cookie stored, ask again; a
        # login that got no token fails here.
        tokens = [c for c in page.context.cookies() if c["name"] == "_token"]
        assert tokens, f"{user} logged in but has no _token cookie; the page is at {page.url}"
        page.goto(start)
        page.wait_for_url(start)


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture
def local_airflow(tmp_path: Path) -> Iterator[Site]:
    """`make airflow` on a free port (tests/helpers/local_airflow.py), the scheduler's own schedule off."""
    from tests.helpers.local_airflow import running  # it imports this module

    with running(tmp_path) as site:
        yield site


# --- the review app on TestClient, auth by header (tests/helpers/review_app.py) ---------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The review app on the small billing DB of `review_app.fill`, under tmp_path."""
    with review_app(tmp_path) as client:
        yield client


@pytest.fixture(name="roles_site")
def _roles_site(tmp_path: Path) -> Iterator[Client]:
    """The same app and DB with three stand-in roles (tests/helpers/review_roles.py)."""
    with roles_site(tmp_path) as client:
        yield client


@pytest.fixture
def airflow() -> Iterator[Airflow]:
    """A stand-in for Airflow's REST API on the loopback (tests/helpers/airflow_api.py)."""
    with serve_airflow() as fake:
        yield fake
