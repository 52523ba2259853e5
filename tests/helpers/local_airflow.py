"""`make airflow` for tests: the real script (scripts/airflow_local.py, as the Makefile runs it) on a
free port, in an AIRFLOW_HOME of the test's own: its sandbox, its seed run of the demo scenario,
`airflow standalone` with LocalExecutor; stopped as `kill` would stop it.

`schedule=False` (the default) turns `[scheduler] use_job_schedule` off, so unpausing the monthly DAG
adds no scheduled run of today's billing day (it would wait days for its invoice and hold
`max_active_runs=1`); a test that wants that waiting run asks for the schedule.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from billing_sync import store
from billing_sync.names import APPLY_DAG_ID
from tests.conftest import ROOT, _airflow_db_template, migrate_airflow_db
from tests.ui.conftest import DAG_ID, Site, free_port

START_TIMEOUT_S = 240  # seed run + standalone's four components on a loaded 2-core machine
# The script's own stop gives each component 30 s after SIGTERM, and standalone's group used all of
# them (teardowns of 28-31 s). By then the test has asserted all it asserts: after this long the
# tree is killed. test_airflow_local.py holds the script's own stop to account.
STOP_TIMEOUT_S = 8
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


def script_env(home: Path, *, schedule: bool = False) -> dict[str, str]:
    """What `make airflow` gives the script (the Makefile's exports), in a home of this test's own."""
    env = {
        k: v
        for k, v in os.environ.items()
        # nothing of the test process's own Airflow or billing settings
        if not k.startswith(("AIRFLOW_VAR_", "AIRFLOW_CONN_", "BILLING_SYNC_", "BILLING_REVIEW_"))
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "GX_ANALYTICS_ENABLED": "false",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": str(schedule),
        }
    )
    return env


def migrated_metadata_db(home: Path, env: dict[str, str]) -> None:
    """What the Makefile's `airflow db migrate` leaves in a new AIRFLOW_HOME: a copy of the migrated,
    empty template that this worker's own migration keeps (tests/conftest.py), or, without one, the
    migration itself (3 s of a CPU on a quiet machine, 8 s under load)."""
    migrate_airflow_db()
    template = _airflow_db_template()
    if template.exists():
        shutil.copyfile(template, home / "airflow.db")
        return
    airflow = Path(sys.executable).with_name("airflow")
    migrated = subprocess.run([str(airflow), "db", "migrate"], env=env, capture_output=True, text=True)
    assert migrated.returncode == 0, migrated.stdout[-2000:] + migrated.stderr[-2000:]


def stop_script(proc: subprocess.Popen) -> None:
    """SIGTERM, as `kill` would: the script stops its tree; whatever outlives a bounded wait is killed."""
    tree = [proc.pid]
    with contextlib.suppress(psutil.Error):
        tree += [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass
    for pid in tree:
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@contextlib.contextmanager
def running(tmp_path: Path, *, schedule: bool = False) -> Iterator[Site]:
    """`make airflow --port <free port>` until the block ends."""
    home = tmp_path / "airflow_home"
    home.mkdir()
    env = script_env(home, schedule=schedule)
    migrated_metadata_db(home, env)

    port = free_port()
    assert port != 8080
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-airflow.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "airflow_local.py"), "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    engine = None
    try:
        passwords = _wait_ready(proc, url, home / PASSWORDS_FILE, log)
        engine = store.make_engine(f"sqlite:///{home / 'billing_sync.db'}")
        yield Site(url, passwords, engine, proc, log, {})
    finally:
        stop_script(proc)
        if engine is not None:
            engine.dispose()


def _wait_ready(proc: subprocess.Popen, url: str, password_file: Path, log: Path) -> dict[str, str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"make airflow exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
            if httpx.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200:
                return json.loads(password_file.read_text())
        time.sleep(1)
    pytest.fail(f"make airflow did not answer on {url} in {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}")


def api(site: Site) -> httpx.Client:
    """Airflow's REST API as `admin`."""
    return httpx.Client(
        base_url=f"{site.url}/api/v2", headers={"Authorization": f"Bearer {site.token('admin')}"}, timeout=60
    )


def wait_for_apply_dag(site: Site) -> dict[str, Any]:
    """The apply DAG once the DAG processor has parsed it (404 until then); the monthly DAG's state."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with api(site) as client:
        while True:
            answer = client.get(f"/dags/{APPLY_DAG_ID}")
            if answer.status_code == 200 and client.get(f"/dags/{APPLY_DAG_ID}/details").status_code == 200:
                assert answer.json()["is_paused"] is False, "the apply DAG is active when deployed"
                monthly = client.get(f"/dags/{DAG_ID}")
                assert monthly.status_code == 200, monthly.text
                return answer.json()
            assert answer.status_code in (200, 404) and time.monotonic() < deadline, answer.text
            time.sleep(2)


@dataclass(frozen=True)
class SandboxUrls:
    huntress_url: str
    connectwise_url: str


def sandbox_urls(site: Site) -> SandboxUrls:
    """The script's sandbox, as its banner line names it ("Sandbox: Huntress <url>, ConnectWise <url>")."""
    found = re.search(r"Sandbox: Huntress (\S+), ConnectWise (\S+)", site.log.read_text())
    assert found, site.log.read_text()[-2000:]
    return SandboxUrls(found.group(1), found.group(2))
