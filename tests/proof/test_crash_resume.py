"""The push killed part-way — the process, by SIGKILL, not an exception — then retried, ends exactly
where an uninterrupted run ends: the same quantities, one write per change, a ledger that agrees
with ConnectWise.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

from billing_sandbox.generate import generate
from billing_sync import steps, store
from billing_sync.connectwise import ConnectWiseClient
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

CHILD = Path(__file__).with_name("push_child.py")
KILL_AFTER_PATCHES = 5
DEADLINE_S = 90


def wait_for_patches(url: str, child: subprocess.Popen, at_least: int) -> int:
    """Poll the sandbox's request log until `at_least` PATCHes were served (bounded by DEADLINE_S)."""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        n = served(url, "PATCH")
        if n >= at_least:
            return n
        assert child.poll() is None, f"the push process ended early: {child.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} PATCHes after {DEADLINE_S}s")


def audit_entries(url: str) -> Counter:
    return Counter(e["id"] for e in admin(url, "state")["audit_trail"])


def test_push_killed_part_way_then_retried(sandbox_factory, db_url, monkeypatch, tmp_path):
    scenario = generate(40, 7, change_share=0.9)
    sb = sandbox_factory(scenario)
    env = connection_env(scenario, sb.huntress_url, sb.connectwise_url)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    eng = store.make_engine(db_url)
    run = run_steps(eng, "crash-run", stop_before="push")
    assert run.error is None, run.describe()
    changes = store.read_frame(eng, "crash-run", "outcomes", tenant="default").query("outcome == 'change'")
    assert len(changes) > 3 * KILL_AFTER_PATCHES, "the scenario must need many writes"
    ref_file = tmp_path / "ref.json"
    ref_file.write_text(json.dumps(run.ref))

    # 1. The push task's process, slowed by latency and a slow ledger, killed after a few writes.
    set_faults(sb.connectwise_url, latency_ms=100)
    child = subprocess.Popen(
        [sys.executable, str(CHILD), str(ref_file), db_url, "0", "0.3"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_patches(sb.connectwise_url, child, KILL_AFTER_PATCHES)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate()
    set_faults(sb.connectwise_url)  # writes still in flight land now, as they would in production
    time.sleep(0.3)
    written = served(sb.connectwise_url, "PATCH")
    recorded = {
        r["sync_key"]
        for r in store.changes_for_run(eng, "crash-run", tenant="default")
        if r["action"] in ("updated", "failed")
    }
    assert written < len(changes), "killed part-way, not after the last write"
    assert len(recorded) < written, "some writes were in ConnectWise but not in the ledger when it died"

    # 2. The retry: a new attempt of the same batch, then the run's record.
    cw = ConnectWiseClient.from_connection(concurrency=run.ref["settings"]["connectwise_concurrency"])
    counts = steps.push_batch(eng, run.ref, 0, cw)
    assert counts["skipped_already_recorded"] == len(recorded)
    result = steps.record_run(eng, run.ref)

    want, _ = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    assert cw_quantities(sb.connectwise_url) == want
    # The killed process may have had a PATCH in flight on each of its connections whose write never
    # applied (it died during the injected latency), so the retry sent it again: at most one extra
    # per request in flight. The audit trail below is what proves each addition changed once.
    in_flight = run.ref["settings"]["connectwise_concurrency"]
    assert 0 <= served(sb.connectwise_url, "PATCH") - len(changes) <= in_flight, "each change written once"
    audit = audit_entries(sb.connectwise_url)
    assert set(audit.values()) == {1} and set(audit) == set(changes["addition_id"].astype(int))

    ledger = store.changes_for_run(eng, "crash-run", tenant="default")
    keys = [r["sync_key"] for r in ledger]
    assert len(keys) == len(set(keys)), "one ledger row per key"
    quantities = cw_quantities(sb.connectwise_url)
    for row in ledger:
        if row["action"] == "updated":
            assert quantities[row["addition_id"]] == row["new_quantity"], row
    assert {r["sync_key"] for r in ledger if r["action"] == "updated"} == set(changes["sync_key"])
    assert result["counts"]["updated"] == len(changes) and result["counts"]["push_rejected"] == 0
    assert not store.list_quarantine(
        eng, run_id="crash-run", reason_code="changed_since_read", tenant="default"
    )
