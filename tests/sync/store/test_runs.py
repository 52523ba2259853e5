"""store/run_records.py: a run's record from start to finish."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from billing_sync import store
from tests.sync.store import DAY, INJECTION


def test_run_lifecycle(engine: sa.Engine) -> None:
    settings = {"dry_run": False, "products": {"edr": "HUNTRESS-EDR"}, "note": INJECTION}
    store.start_run(engine, "manual__1", DAY, 5001, "push", settings, tenant="default")
    store.finish_run(engine, "manual__1", "failed", {"updated": 1}, tenant="default")
    time.sleep(0.002)
    store.start_run(
        engine, "manual__1", DAY, 5001, "push", settings, tenant="default"
    )  # retried: no error, fresh record
    run = store.get_run(engine, "manual__1", tenant="default")
    assert run["status"] == "running" and run["finished_at"] is None and run["counts"] is None
    assert run["settings"] == settings and run["billing_date"] == DAY and run["invoice_id"] == 5001
    counts = {"updated": 3, "unchanged": 5, "quarantined": 2, "no_live_addition": 2}
    checks = {"totals": {"edr": {"huntress": 40, "connectwise": 40}}, "mismatches": []}
    store.finish_run(
        engine, "manual__1", "success", counts, checks, "/reports/2026-11-01.html", tenant="default"
    )
    run = store.get_run(engine, "manual__1", tenant="default")
    assert (
        run["counts"] == counts
        and run["checks"] == checks
        and run["report_path"] == "/reports/2026-11-01.html"
    )
    assert run["finished_at"] >= run["started_at"] and run["started_at"].utcoffset() == timedelta(0)
    time.sleep(0.002)
    store.start_run(engine, "scheduled__2", DAY + timedelta(days=30), None, "dry_run", {}, tenant="default")
    assert [r["run_id"] for r in store.list_runs(engine, tenant="default")] == ["scheduled__2", "manual__1"]
    assert [r["run_id"] for r in store.list_runs(engine, limit=1, offset=1, tenant="default")] == [
        "manual__1"
    ]
    assert [r["run_id"] for r in store.list_runs(engine, billing_date=DAY, tenant="default")] == ["manual__1"]
    assert store.get_run(engine, "nope", tenant="default") is None
    with pytest.raises(store.RunNotFound):
        store.finish_run(engine, "nope", "success", {}, tenant="default")
    with pytest.raises(ValueError, match="mode"):
        store.start_run(engine, "x", DAY, None, "yolo", {}, tenant="default")


def test_checks_added_after_a_run_closed_change_nothing_else(engine: sa.Engine) -> None:
    """An alert's fate is learnt after the run closed: it joins `checks`, and the run keeps its
    status, counts, other checks and finished_at (it did not finish again)."""
    store.start_run(engine, "r1", DAY, 7000, "push", {}, tenant="north")
    assert not store.add_run_checks(engine, "r1", {"alerts": {"email": "x"}}, tenant="north")  # running
    store.finish_run(engine, "r1", "success", {"updated": 3}, {"mismatches": []}, "/r", tenant="north")
    before = store.get_run(engine, "r1", tenant="north")
    assert not store.add_run_checks(engine, "r1", {"alerts": {}}, tenant="south")  # not south's run
    assert store.add_run_checks(engine, "r1", {"alerts": {"email": "failed after 3"}}, tenant="north")
    after = store.get_run(engine, "r1", tenant="north")
    assert before is not None and after is not None
    assert after["checks"] == {"mismatches": [], "alerts": {"email": "failed after 3"}}
    assert {k: v for k, v in after.items() if k != "checks"} == {
        k: v for k, v in before.items() if k != "checks"
    }
