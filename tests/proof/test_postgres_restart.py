"""The billing database (PostgreSQL) restarts in the middle of a push: each change is written to
ConnectWise once, the ledger holds each change once, and the push task, retried as Airflow retries
it (a new process for each try, the same batch), finishes the run.

A private cluster (tests/proof/servers.py), never the shared server: it is crashed with
`pg_ctl stop -m immediate` (every server process quits at once, as when the machine's database
service dies) and started again two seconds later, while the push task process is writing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from billing_sandbox.generate import generate
from billing_sync import steps, store
from tests.helpers.oracle import expected_state
from tests.proof.helpers import (
    BILLING_DATE,
    admin,
    connection_env,
    cw_quantities,
    run_steps,
    served,
    set_faults,
)
from tests.proof.servers import private_postgres

CHILD = Path(__file__).with_name("push_child.py")
RUN_ID = "pg-restart-run"
TENANT = store.DEFAULT_TENANT
RESTART_AFTER_PATCHES = 5
DOWN_S = 2.0  # a restart with crash recovery; the push meets the server gone
LATENCY_MS = 300  # each ConnectWise request of try 1: it lasts seconds, and meets the restart
TRIES = 3  # the DAG's retries (2) + the first try
DEADLINE_S = 120


@pytest.fixture
def private_pg():
    with private_postgres() as pg:
        yield pg


def push_try(ref_file: Path, db_url: str, env: dict[str, str]) -> subprocess.Popen:
    """One try of push task batch 0, in a process of its own, as Airflow's task runner starts it."""
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(ref_file), db_url, "0", "0"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_patches(url: str, proc: subprocess.Popen, at_least: int) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while served(url, "PATCH") < at_least:
        assert proc.poll() is None, f"the push ended before {at_least} writes: {proc.communicate()}"
        assert time.monotonic() < deadline, f"fewer than {at_least} PATCHes after {DEADLINE_S}s"
        time.sleep(0.02)


def recorded(eng) -> list[dict]:
    return [r for r in store.changes_for_run(eng, RUN_ID, tenant=TENANT) if r["action"] != "unchanged"]


def test_postgres_restart_mid_push_writes_each_change_once(
    private_pg, sandbox_factory, monkeypatch, tmp_path
):
    started = time.monotonic()
    scenario = generate(60, 7, change_share=0.9)
    sb = sandbox_factory(scenario)
    env = connection_env(scenario, sb.huntress_url, sb.connectwise_url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    eng = store.make_engine(private_pg.url)
    run = run_steps(eng, RUN_ID, stop_before="push")
    assert run.error is None, run.describe()
    outcomes = store.read_frame(eng, RUN_ID, "outcomes", tenant=TENANT)
    changes = outcomes[outcomes["outcome"] == "change"]
    assert len(changes) > 10 * RESTART_AFTER_PATCHES, "the scenario must need many writes"
    ref_file = tmp_path / "ref.json"
    ref_file.write_text(json.dumps(run.ref))
    set_faults(sb.connectwise_url, latency_ms=LATENCY_MS)

    # Try 1: the database crashes under it after a few writes, and is back 2 s later.
    first = push_try(ref_file, private_pg.url, env)
    try:
        wait_for_patches(sb.connectwise_url, first, RESTART_AFTER_PATCHES)
        private_pg.restart("immediate", down_s=DOWN_S)
        out, err = first.communicate(timeout=DEADLINE_S)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode != 0, f"the restart must meet the push: {out}"
    assert "OperationalError" in err or "InterfaceError" in err, err[-3000:]
    written_1, recorded_1 = served(sb.connectwise_url, "PATCH"), len(recorded(eng))
    # Once its writes can no longer be recorded the task stops writing: only what was already in
    # flight lands unrecorded, for the next try to settle by re-reading (not the rest of the batch).
    assert written_1 < len(changes), f"try 1 went on writing without a ledger: {written_1} writes"
    assert recorded_1 < written_1, "some writes were in ConnectWise, not in the ledger, when it failed"

    # Tries 2.. : a new process each, as Airflow's retries (no wait: the delay is Airflow's).
    set_faults(sb.connectwise_url)
    tries = 1
    while True:
        tries += 1
        proc = push_try(ref_file, private_pg.url, env)
        out, err = proc.communicate(timeout=DEADLINE_S)
        if proc.returncode == 0:
            break
        assert tries < TRIES, f"the push did not finish within the DAG's retries:\n{err[-3000:]}"
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["skipped_already_recorded"] == recorded_1
    result = steps.record_run(eng, run.ref)

    # Each change written once: the PATCH count and ConnectWise's own audit trail agree.
    want, _ = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    assert cw_quantities(sb.connectwise_url) == want
    assert served(sb.connectwise_url, "PATCH") == len(changes), "no change written twice"
    audit = Counter(e["id"] for e in admin(sb.connectwise_url, "state")["audit_trail"])
    assert set(audit.values()) == {1} and set(audit) == set(changes["addition_id"].astype(int))
    # The ledger holds each change once, as ConnectWise holds it; the run is recorded as finished.
    ledger = store.changes_for_run(eng, RUN_ID, tenant=TENANT)
    keys = [r["sync_key"] for r in ledger]
    assert len(keys) == len(set(keys)), "one ledger row per key"
    updated = [r for r in ledger if r["action"] == "updated"]
    assert {r["sync_key"] for r in updated} == set(changes["sync_key"])
    assert all(want[r["addition_id"]] == r["new_quantity"] for r in updated)
    assert result["counts"]["updated"] == len(changes) and result["counts"].get("push_rejected", 0) == 0
    assert store.get_run(eng, RUN_ID, tenant=TENANT)["status"] == "success"
    eng.dispose()
    print(
        f"\npostgres restart: 1 crash-restart ({DOWN_S:g} s down) mid-push; {len(changes)} changes, "
        f"{served(sb.connectwise_url, 'PATCH')} PATCHes ({written_1} by try 1, {recorded_1} of them "
        f"recorded before it failed), {tries} tries, duplicates 0; {time.monotonic() - started:.1f} s"
    )
