"""store/quarantine_rows.py: one open row per billing date, key and reason; reviewers' decisions."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from billing_sync import store
from tests.sync.store import DAY, q_row


def test_rerun_refreshes_the_open_row_instead_of_duplicating(engine: sa.Engine) -> None:
    assert store.upsert_quarantine(engine, "run-1", DAY, [q_row()], tenant="default") == 1
    [first] = store.list_quarantine(engine, tenant="default")
    assert first["status"] == "open" and first["payload"] == {"usage": 40, "lines": [9, 10]}
    assert first["first_seen_at"].tzinfo is not None and first["first_seen_at"].utcoffset() == timedelta(0)
    time.sleep(0.002)
    assert (
        store.upsert_quarantine(
            engine,
            "run-2",
            "2026-11-01",
            [q_row(detail="still missing", payload={"usage": 41})],
            tenant="default",
        )
        == 1
    )
    [row] = store.list_quarantine(engine, tenant="default")
    assert row["id"] == first["id"] and row["run_id"] == "run-2"
    assert row["detail"] == "still missing" and row["payload"] == {"usage": 41}
    assert row["first_seen_at"] == first["first_seen_at"] and row["last_seen_at"] > first["last_seen_at"]
    # another reason or another billing date is another row
    store.upsert_quarantine(engine, "run-3", DAY, [q_row(reason="duplicate_addition")], tenant="default")
    store.upsert_quarantine(engine, "run-4", DAY + timedelta(days=30), [q_row()], tenant="default")
    assert store.count_quarantine(engine, status="open", tenant="default") == 3


def test_dismissed_row_stays_dismissed(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "run-1", DAY, [q_row()], tenant="default")
    [row] = store.list_quarantine(engine, tenant="default")
    store.set_quarantine_status(
        engine, row["id"], "dismissed", "alice", "customer pays annually", tenant="default"
    )
    assert store.upsert_quarantine(engine, "run-2", DAY, [q_row()], tenant="default") == 0
    [again] = store.list_quarantine(engine, tenant="default")
    assert again["status"] == "dismissed" and again["run_id"] == "run-1"
    assert again["note"] == "customer pays annually" and again["last_seen_at"] > row["last_seen_at"]
    # a later billing date is a new decision
    store.upsert_quarantine(engine, "run-3", DAY + timedelta(days=30), [q_row()], tenant="default")
    assert store.count_quarantine(engine, status="open", tenant="default") == 1


def test_resolve_synced_touches_equal_and_older_dates_only(engine: sa.Engine) -> None:
    older, newer = DAY - timedelta(days=31), DAY + timedelta(days=30)
    for run_id, day in (("r-old", older), ("r-now", DAY), ("r-new", newer)):
        store.upsert_quarantine(engine, run_id, day, [q_row(), q_row("company:251:edr")], tenant="default")
    assert (
        store.resolve_synced(engine, "r-sync", DAY, ["company:250:edr", "company:999:edr"], tenant="default")
        == 2
    )
    resolved = store.list_quarantine(engine, status="resolved", tenant="default")
    assert {r["billing_date"] for r in resolved} == {older, DAY}
    assert {r["resolved_by"] for r in resolved} == {"sync:r-sync"}
    assert all(r["resolved_at"].utcoffset() == timedelta(0) for r in resolved)
    assert [
        r["billing_date"]
        for r in store.list_quarantine(engine, status="open", sync_key="company:250:edr", tenant="default")
    ] == [newer]
    assert store.resolve_synced(engine, "r-sync", DAY, [], tenant="default") == 0
    # the problem coming back opens a fresh row
    store.upsert_quarantine(engine, "r-again", DAY, [q_row()], tenant="default")
    assert store.count_quarantine(engine, billing_date=DAY, sync_key="company:250:edr", tenant="default") == 2


def test_resolve_superseded(engine: sa.Engine) -> None:
    store.upsert_quarantine(
        engine,
        "r1",
        DAY,
        [
            q_row(),
            q_row("organization:101:edr", "unmapped_organization"),
            q_row("company:251:edr", "push_rejected"),
        ],
        tenant="default",
    )
    store.upsert_quarantine(engine, "r0", DAY - timedelta(days=30), [q_row()], tenant="default")
    current = {"company:250:edr": "change_exceeds_limit"}
    store.upsert_quarantine(engine, "r2", DAY, [q_row(reason="change_exceeds_limit")], tenant="default")
    seen = ["company:250:edr", "company:251:edr"]  # the organization got mapped: its key is gone
    assert store.resolve_superseded(engine, "r2", DAY, current, seen_keys=seen, tenant="default") == 2
    by_key = {
        (r["sync_key"], r["reason_code"]): r
        for r in store.list_quarantine(engine, billing_date=DAY, tenant="default")
    }
    assert by_key[("company:250:edr", "no_live_addition")]["note"] == "superseded by change_exceeds_limit"
    assert by_key[("company:250:edr", "no_live_addition")]["resolved_by"] == "sync:r2"
    assert by_key[("organization:101:edr", "unmapped_organization")]["note"] == "no longer reported"
    assert by_key[("company:250:edr", "change_exceeds_limit")]["status"] == "open"
    assert by_key[("company:251:edr", "push_rejected")]["status"] == "open"  # left for resolve_synced
    assert (
        store.list_quarantine(engine, billing_date=DAY - timedelta(days=30), tenant="default")[0]["status"]
        == "open"
    )


def test_set_quarantine_status_records_who_when_and_note(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "r1", DAY, [q_row()], tenant="default")
    [row] = store.list_quarantine(engine, tenant="default")
    before = datetime.now(UTC)
    out = store.set_quarantine_status(
        engine, row["id"], "resolved", "bob", "fixed the addition by hand", tenant="default"
    )
    assert out["status"] == "resolved" and out["resolved_by"] == "bob"
    assert out["note"] == "fixed the addition by hand" and out["resolved_at"] >= before - timedelta(seconds=1)
    reopened = store.set_quarantine_status(engine, row["id"], "open", "carol", "not fixed", tenant="default")
    assert (
        reopened["status"] == "open" and reopened["resolved_at"] is None and reopened["resolved_by"] is None
    )
    assert reopened["note"] == "reopened by carol: not fixed"
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_quarantine_status(engine, row["id"], "closed", "bob", None, tenant="default")
    with pytest.raises(ValueError, match="user"):
        store.set_quarantine_status(engine, row["id"], "dismissed", " ", None, tenant="default")
    with pytest.raises(store.QuarantineNotFound):
        store.set_quarantine_status(engine, 999_999, "dismissed", "bob", None, tenant="default")
    assert issubclass(store.QuarantineNotFound, LookupError)


def test_reopen_refuses_a_second_open_row(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "r1", DAY, [q_row()], tenant="default")
    [old] = store.list_quarantine(engine, tenant="default")
    store.set_quarantine_status(engine, old["id"], "resolved", "bob", None, tenant="default")
    store.upsert_quarantine(engine, "r2", DAY, [q_row()], tenant="default")
    with pytest.raises(ValueError, match="already open"):
        store.set_quarantine_status(engine, old["id"], "open", "bob", None, tenant="default")


def test_reopen_looks_only_at_its_own_tenants_rows(engine: sa.Engine) -> None:
    """Issue 19 §4: south's open row with the same key neither blocks north's reopen nor is revealed
    by it; and one tenant cannot read or decide another's row by its id."""
    store.upsert_quarantine(engine, "r1", DAY, [q_row()], tenant="north")
    store.upsert_quarantine(engine, "r1", DAY, [q_row()], tenant="south")
    [north] = store.list_quarantine(engine, tenant="north")
    [south] = store.list_quarantine(engine, tenant="south")
    assert north["sync_key"] == south["sync_key"]
    store.set_quarantine_status(engine, north["id"], "dismissed", "nils", "known", tenant="north")
    reopened = store.set_quarantine_status(engine, north["id"], "open", "nils", None, tenant="north")
    assert reopened["status"] == "open" and reopened["tenant"] == "north"
    assert store.get_quarantine(engine, south["id"], tenant="north") is None
    with pytest.raises(store.QuarantineNotFound):
        store.set_quarantine_status(engine, south["id"], "dismissed", "nils", "x", tenant="north")
    assert store.get_quarantine(engine, south["id"], tenant="south")["status"] == "open"


def test_payload_is_strict_json_text(engine: sa.Engine) -> None:
    numpy_int = pd.Series([3], dtype="int64").iloc[0]
    payload = {"nan": float("nan"), "na": pd.NA, "n": numpy_int, "when": DAY, "ids": (1, 2)}
    store.upsert_quarantine(engine, "r1", DAY, [q_row(payload=payload)], tenant="default")
    with engine.connect() as conn:
        raw = conn.execute(sa.select(sa.cast(store.quarantine.c.payload, sa.Text))).scalar_one()
    assert isinstance(raw, str) and "NaN" not in raw
    assert store.list_quarantine(engine, tenant="default")[0]["payload"] == {
        "nan": None,
        "na": None,
        "n": 3,
        "when": "2026-11-01",
        "ids": [1, 2],
    }


def test_upsert_quarantine_validates_rows(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="reason_code"):
        store.upsert_quarantine(engine, "r", DAY, [q_row(reason="because")], tenant="default")
    with pytest.raises(ValueError, match="sync_key"):
        store.upsert_quarantine(engine, "r", DAY, [q_row(key="")], tenant="default")
    assert store.upsert_quarantine(engine, "r", DAY, [], tenant="default") == 0


def test_list_quarantine_filters_and_pages(engine: sa.Engine) -> None:
    rows = [q_row(f"company:{c}:edr", cw_company_id=c) for c in range(300, 310)]
    rows.append(
        q_row("organization:7:edr", "unmapped_organization", cw_company_id=pd.NA, huntress_organization_id=7)
    )
    store.upsert_quarantine(engine, "r1", DAY, rows, tenant="default")
    assert store.count_quarantine(engine, tenant="default") == 11
    assert len(store.list_quarantine(engine, limit=4, offset=8, tenant="default")) == 3
    assert [r["sync_key"] for r in store.list_quarantine(engine, company_id=305, tenant="default")] == [
        "company:305:edr"
    ]
    [unmapped] = store.list_quarantine(engine, reason_code="unmapped_organization", tenant="default")
    assert unmapped["cw_company_id"] is None and unmapped["huntress_organization_id"] == 7
    assert store.list_quarantine(engine, run_id="other", tenant="default") == []
    assert store.get_quarantine(engine, unmapped["id"], tenant="default")["sync_key"] == "organization:7:edr"
    assert store.get_quarantine(engine, 123_456, tenant="default") is None
