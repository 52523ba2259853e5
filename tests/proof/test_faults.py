"""Faults on both APIs: a full DAG run ends exactly where a fault-free run does; an API that stays
down fails its task with a clear message after the retries, and the next run finishes the job.
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from billing_sandbox.generate import generate
from tests.conftest import Sandbox
from tests.helpers.oracle import expected_state
from tests.proof.conftest import task_states
from tests.proof.helpers import BILLING_DATE, admin, cw_quantities, set_faults

pytestmark = pytest.mark.e2e

FAULTS = {"latency_ms": 20, "status_rate": {"500": 0.10, "429": 0.05}, "reset_rate": 0.02, "retry_after_s": 1}
OUTCOMES = ("updated", "unchanged", "planned", "not_applicable", "quarantined")


@pytest.fixture(scope="module")
def scenario() -> dict[str, Any]:
    return generate(40, 7)


def billing_state(url: str) -> dict[str, Any]:
    """What a run leaves in the billing database, independent of run ids and times."""
    eng = sa.create_engine(url)
    with eng.connect() as c:
        runs = c.execute(sa.text("select run_id, status, mode, counts from billing_runs")).mappings().all()
        ledger = c.execute(
            sa.text("select run_id, sync_key, action, previous_quantity, new_quantity from billing_changes")
        ).all()
        open_rows = c.execute(
            sa.text("select sync_key, reason_code from billing_quarantine where status = 'open'")
        ).all()
    eng.dispose()
    return {"runs": runs, "ledger": ledger, "open": open_rows}


def audit_trail(sb: Sandbox) -> Counter:
    return Counter((e["id"], e["text"]) for e in admin(sb.connectwise_url, "state")["audit_trail"])


def assert_consistent(state: dict[str, Any]) -> dict[str, int]:
    """One finished run; one ledger row and one outcome per key; one open quarantine row per key."""
    (run,) = state["runs"]
    assert (run["status"], run["mode"]) == ("success", "push")
    counts = json.loads(run["counts"])
    assert sum(counts[o] for o in OUTCOMES) == counts["total"]
    reasons = {k: v for k, v in counts.items() if k not in (*OUTCOMES, "total", "change", "failed")}
    assert sum(reasons.values()) == counts["quarantined"]
    keys = [k for k, _ in state["open"]]
    assert len(keys) == len(set(keys)) == counts["quarantined"]
    ledger_keys = [row.sync_key for row in state["ledger"]]
    assert len(ledger_keys) == len(set(ledger_keys)), "no duplicate ledger rows"
    assert set(keys).isdisjoint(
        row.sync_key for row in state["ledger"] if row.action in ("updated", "unchanged")
    )
    return counts


def test_faulty_run_ends_exactly_like_a_fault_free_run(sandbox_factory, dag_runner, tmp_path, scenario):
    clean, faulty = sandbox_factory(scenario), sandbox_factory(scenario)
    want, _ = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    # Seeds chosen so that the few Huntress requests of a run meet a 500 and a 429 too.
    for url, seed in ((faulty.huntress_url, 22), (faulty.connectwise_url, 11)):
        set_faults(url, **FAULTS, seed=seed)

    assert dag_runner(clean, BILLING_DATE, db_url=f"sqlite:///{tmp_path / 'clean.db'}").state == "success"
    dr = dag_runner(faulty, BILLING_DATE, db_url=f"sqlite:///{tmp_path / 'faulty.db'}", max_retries=10)
    assert dr.state == "success", task_states(dr)

    injected = {
        name: admin(url, "requests")["faults_injected"]
        for name, url in (("huntress", faulty.huntress_url), ("connectwise", faulty.connectwise_url))
    }
    assert set(injected["connectwise"]) == {"500", "429", "reset"}, injected
    assert {"500", "429"} <= set(injected["huntress"]), injected
    assert cw_quantities(faulty.connectwise_url) == want
    assert cw_quantities(clean.connectwise_url) == want
    # Retried requests never wrote twice: the audit trail is the fault-free one, entry for entry.
    assert audit_trail(faulty) == audit_trail(clean)

    a, b = (
        billing_state(f"sqlite:///{tmp_path / 'clean.db'}"),
        billing_state(f"sqlite:///{tmp_path / 'faulty.db'}"),
    )
    assert assert_consistent(a) == assert_consistent(b)
    assert sorted(b["open"]) == sorted(a["open"])
    assert sorted(r[1:] for r in b["ledger"]) == sorted(r[1:] for r in a["ledger"])


def test_api_down_fails_clearly_then_next_run_finishes(
    sandbox_factory, dag_runner, tmp_path, scenario, capfd
):
    scenario = copy.deepcopy(scenario)  # secrets no log line could contain by chance
    scenario["huntress"]["api_secret"], scenario["connectwise"]["private_key"] = (
        "hsDOWN7f3a9c",
        "cwDOWN1b8e42",
    )
    sb = sandbox_factory(scenario)
    want, _ = expected_state(scenario, date.fromisoformat(BILLING_DATE))
    before = cw_quantities(sb.connectwise_url)
    secrets = (scenario["huntress"]["api_secret"], scenario["connectwise"]["private_key"])

    # 1. ConnectWise answers every request with 500: its extract fails after 2 HTTP attempts x 3 tries.
    set_faults(sb.connectwise_url, status_rate={"500": 1.0})
    dr = dag_runner(sb, BILLING_DATE, max_retries=2)
    states = task_states(dr)
    assert dr.state == "failed"
    assert states["extract_connectwise"] == ("failed", 3), states
    assert states["extract_huntress"][0] == "success" and states["record_run"][0] == "upstream_failed"
    output = capfd.readouterr()
    message = "ConnectWise GET /login/companyinfo/{companyId} failed after 2 attempts: HTTP 500"
    assert (output.out + output.err).count(message) >= 3, "each of the 3 tries names the API and endpoint"
    assert not any(s in output.out + output.err for s in secrets)
    assert cw_quantities(sb.connectwise_url) == before

    # 2. Both APIs unreachable (the sandbox stopped): the sensor fails, naming Huntress and the endpoint.
    ports = (sb.huntress_url.rsplit(":", 1)[1], sb.connectwise_url.rsplit(":", 1)[1])
    sb.stop()
    dr = dag_runner(sb, BILLING_DATE, max_retries=2)
    assert dr.state == "failed" and task_states(dr)["wait_for_invoice"] == ("failed", 3)
    output = capfd.readouterr()
    assert (
        "Huntress GET /v1/reseller/invoices failed after 2 attempts: connection error"
        in output.out + output.err
    )

    # 3. Back up, faults cleared: the next run for the same billing date finishes the job.
    revived = sandbox_factory(scenario, "--huntress-port", ports[0], "--connectwise-port", ports[1])
    assert (revived.huntress_url, revived.connectwise_url) == (sb.huntress_url, sb.connectwise_url)
    dr = dag_runner(revived, BILLING_DATE)
    assert dr.state == "success", task_states(dr)
    assert cw_quantities(revived.connectwise_url) == want
    state = billing_state(f"sqlite:///{tmp_path / 'billing.db'}")
    finished = [r for r in state["runs"] if r["status"] == "success"]
    assert len(finished) == 1
