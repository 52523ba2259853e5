"""The billing database (store.py) on SQLite and PostgreSQL alike (the `db_url` fixture runs both)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
import sqlalchemy as sa

from billing_sync import frames, store

INJECTION = "O'Brien \"Ltd\"'; DROP TABLE billing_quarantine;--"
DAY = date(2026, 11, 1)


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = store.make_engine(db_url)
    yield eng
    eng.dispose()


def q_row(key: str = "company:250:edr", reason: str = "no_live_addition", **extra: object) -> dict:
    row = {
        "sync_key": key,
        "huntress_organization_id": 101,
        "huntress_organization_name": "Acme Corp",
        "cw_company_id": 250,
        "product": "edr",
        "reason_code": reason,
        "detail": "no live addition for HUNTRESS-EDR",
        "payload": {"usage": 40, "lines": [9, 10]},
    }
    return row | extra


def change(key: str = "company:250:edr", action: str = "updated", **extra: object) -> dict:
    row = {
        "sync_key": key,
        "cw_company_id": 250,
        "agreement_id": 1578,
        "addition_id": 501,
        "product": "edr",
        "huntress_quantity": 40,
        "previous_quantity": 38.0,
        "new_quantity": 40,
        "action": action,
    }
    return row | extra


# --- schema and engine ------------------------------------------------------------------------------


def test_default_url_points_into_airflow_home(tmp_path) -> None:
    assert store.default_url(tmp_path) == f"sqlite:///{tmp_path}/billing_sync.db"


def test_ensure_schema_twice_is_harmless(engine: sa.Engine) -> None:
    store.ensure_schema(engine)
    store.ensure_schema(engine)
    names = set(sa.inspect(engine).get_table_names())
    expected = {"billing_quarantine", "billing_changes", "billing_runs", "billing_org_map"}
    assert expected | {f"billing_stg_{n}" for n in frames.SCHEMAS} <= names


def test_ensure_schema_concurrently_from_several_engines(db_url: str) -> None:
    engines = [store.make_engine(db_url) for _ in range(3)]
    barrier, errors = threading.Barrier(len(engines)), []

    def create(eng: sa.Engine) -> None:
        barrier.wait()
        try:
            store.ensure_schema(eng)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert store.ledger_count(engines[0]) == 0
    for e in engines:
        e.dispose()


def test_concurrent_tasks_neither_fail_nor_duplicate(db_url: str) -> None:
    """Tasks on several workers writing at once: no "database is locked", one open row per key."""
    engines = [store.make_engine(db_url) for _ in range(4)]
    store.ensure_schema(engines[0])
    df = pd.concat([sample_frame("usage")] * 500, ignore_index=True)
    barrier, errors = threading.Barrier(len(engines)), []

    def task(i: int, eng: sa.Engine) -> None:
        barrier.wait()
        try:
            for _ in range(2):
                store.write_frame(eng, f"run-{i}", "usage", df)
                store.upsert_quarantine(eng, f"run-{i}", DAY, [q_row()])  # the same key from every task
                store.record_changes(eng, f"run-{i}", DAY, [change()])
                assert len(store.read_frame(eng, f"run-{i}", "usage")) == len(df)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(i, e)) for i, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert store.count_quarantine(engines[0], status="open") == 1
    assert store.ledger_count(engines[0]) == len(engines)
    for e in engines:
        e.dispose()


def test_sqlite_engine_uses_wal(tmp_path) -> None:
    eng = store.make_engine(f"sqlite:///{tmp_path / 'wal.db'}")
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    eng.dispose()


def test_postgres_url_forms_get_the_installed_driver() -> None:
    for url in ("postgres://u@h/db", "postgresql://u@h/db"):
        eng = store.make_engine(url)  # no connection is made
        assert eng.dialect.name == "postgresql" and eng.dialect.driver in {"psycopg2", "psycopg"}


# --- staging frames ---------------------------------------------------------------------------------

_SAMPLES = {
    "Int64": [1, 2**40, None, 0],
    "string": ["Café «Ünïcode» ✓", "<b>&amp; markup</b>\n\ttabbed C:\\new\\N", None, INJECTION],
    "Float64": [38.0, 0.1, None, -1.5e-300],
    "boolean": [True, False, None, True],
    "datetime64[ns, UTC]": [
        "2025-01-01T00:00:00Z",
        "2026-03-29T01:30:15.123456+02:00",  # a non-UTC offset comes back as the same instant in UTC
        None,
        "1999-12-31T23:59:59Z",
    ],
}


def sample_frame(name: str) -> pd.DataFrame:
    """Four rows for any frame in SCHEMAS: realistic values, and NA in every column of row 3."""
    data = {col: _SAMPLES[dtype] for col, dtype in frames.SCHEMAS[name].items()}
    return frames.conform(pd.DataFrame(data, dtype=object), name)


@pytest.mark.parametrize("name", sorted(frames.SCHEMAS))
def test_frame_round_trip_keeps_dtypes_and_na(engine: sa.Engine, name: str) -> None:
    df = sample_frame(name)
    assert store.write_frame(engine, "run-1", name, df) == 4
    back = store.read_frame(engine, "run-1", name)
    pd.testing.assert_frame_equal(back, df)
    assert dict(back.dtypes.astype(str)) == frames.SCHEMAS[name]
    assert back.iloc[2].isna().all()


def test_rewriting_a_run_replaces_only_that_run(engine: sa.Engine) -> None:
    df = sample_frame("usage")
    store.write_frame(engine, "run-a", "usage", df)
    store.write_frame(engine, "run-b", "usage", df.iloc[:2])
    store.write_frame(engine, "run-a", "usage", df.iloc[[3, 0]])
    pd.testing.assert_frame_equal(
        store.read_frame(engine, "run-a", "usage"), df.iloc[[3, 0]].reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(store.read_frame(engine, "run-b", "usage"), df.iloc[:2])
    store.write_frame(engine, "run-a", "usage", frames.empty("usage"))
    assert store.read_frame(engine, "run-a", "usage").empty


def test_escape_like_strings_are_data_not_markers(engine: sa.Engine) -> None:
    tricky = ["\\N", "", "a\\tb\tc", "\\", "line1\r\nline2", None]
    df = frames.conform(
        pd.DataFrame({"company_id": range(6), "identifier": tricky, "name": list(reversed(tricky))}),
        "companies",
    )
    store.write_frame(engine, "r", "companies", df)
    back = store.read_frame(engine, "r", "companies")
    pd.testing.assert_frame_equal(back, df)
    assert back["identifier"].isna().tolist() == [False] * 5 + [True]


def test_missing_frame_reads_as_empty_with_dtypes(engine: sa.Engine) -> None:
    back = store.read_frame(engine, "never", "additions")
    assert back.empty
    assert dict(back.dtypes.astype(str)) == frames.SCHEMAS["additions"]


def test_write_frame_refuses_unknown_frames_and_missing_columns(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="unknown frame"):
        store.write_frame(engine, "r", "nope", pd.DataFrame())
    with pytest.raises(ValueError, match="missing column"):
        store.write_frame(engine, "r", "companies", pd.DataFrame({"company_id": [1]}))


def test_100k_usage_rows_write_and_read_quickly(engine: sa.Engine) -> None:
    n = 100_000
    df = frames.conform(
        pd.DataFrame(
            {
                "invoice_id": [5001] * n,
                "line_id": range(n),
                "organization_id": [None if i % 50 == 0 else i // 4 for i in range(n)],
                "organization_name": [f"Org {i // 4} «ü»" for i in range(n)],
                "product": ["edr", "itdr", "sat", "siem"] * (n // 4),
                "raw_quantity": [str(i % 500) for i in range(n)],
                "quantity": [None if i % 97 == 0 else i % 500 for i in range(n)],
            }
        ),
        "usage",
    )
    store.ensure_schema(engine)
    start = time.perf_counter()
    store.write_frame(engine, "big", "usage", df)
    written = time.perf_counter()
    back = store.read_frame(engine, "big", "usage")
    done = time.perf_counter()
    print(
        f"\n{engine.dialect.name}: 100k usage rows write {written - start:.2f}s, read {done - written:.2f}s"
    )
    pd.testing.assert_frame_equal(back, df)
    assert done - start < 20  # a guard against row-by-row inserts, not a benchmark


def test_purge_staging_keeps_newest_and_running_runs(engine: sa.Engine) -> None:
    df = sample_frame("companies")
    for i in range(4):
        store.start_run(engine, f"r{i}", DAY, 1, "push", {})
        store.write_frame(engine, f"r{i}", "companies", df)
        if i != 0:
            store.finish_run(engine, f"r{i}", "success", {})
        time.sleep(0.002)  # distinct started_at
    store.write_frame(engine, "unrecorded", "companies", df)
    assert store.purge_staging(engine, keep_runs=2) == 4  # r1 only: r0 is still running
    assert store.read_frame(engine, "r1", "companies").empty
    for run_id in ("r0", "r2", "r3", "unrecorded"):
        assert len(store.read_frame(engine, run_id, "companies")) == 4


# --- quarantine ---------------------------------------------------------------------------------


def test_rerun_refreshes_the_open_row_instead_of_duplicating(engine: sa.Engine) -> None:
    assert store.upsert_quarantine(engine, "run-1", DAY, [q_row()]) == 1
    [first] = store.list_quarantine(engine)
    assert first["status"] == "open" and first["payload"] == {"usage": 40, "lines": [9, 10]}
    assert first["first_seen_at"].tzinfo is not None and first["first_seen_at"].utcoffset() == timedelta(0)
    time.sleep(0.002)
    assert (
        store.upsert_quarantine(
            engine, "run-2", "2026-11-01", [q_row(detail="still missing", payload={"usage": 41})]
        )
        == 1
    )
    [row] = store.list_quarantine(engine)
    assert row["id"] == first["id"] and row["run_id"] == "run-2"
    assert row["detail"] == "still missing" and row["payload"] == {"usage": 41}
    assert row["first_seen_at"] == first["first_seen_at"] and row["last_seen_at"] > first["last_seen_at"]
    # another reason or another billing date is another row
    store.upsert_quarantine(engine, "run-3", DAY, [q_row(reason="duplicate_addition")])
    store.upsert_quarantine(engine, "run-4", DAY + timedelta(days=30), [q_row()])
    assert store.count_quarantine(engine, status="open") == 3


def test_dismissed_row_stays_dismissed(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "run-1", DAY, [q_row()])
    [row] = store.list_quarantine(engine)
    store.set_quarantine_status(engine, row["id"], "dismissed", "alice", "customer pays annually")
    assert store.upsert_quarantine(engine, "run-2", DAY, [q_row()]) == 0
    [again] = store.list_quarantine(engine)
    assert again["status"] == "dismissed" and again["run_id"] == "run-1"
    assert again["note"] == "customer pays annually" and again["last_seen_at"] > row["last_seen_at"]
    # a later billing date is a new decision
    store.upsert_quarantine(engine, "run-3", DAY + timedelta(days=30), [q_row()])
    assert store.count_quarantine(engine, status="open") == 1


def test_resolve_synced_touches_equal_and_older_dates_only(engine: sa.Engine) -> None:
    older, newer = DAY - timedelta(days=31), DAY + timedelta(days=30)
    for run_id, day in (("r-old", older), ("r-now", DAY), ("r-new", newer)):
        store.upsert_quarantine(engine, run_id, day, [q_row(), q_row("company:251:edr")])
    assert store.resolve_synced(engine, "r-sync", DAY, ["company:250:edr", "company:999:edr"]) == 2
    resolved = store.list_quarantine(engine, status="resolved")
    assert {r["billing_date"] for r in resolved} == {older, DAY}
    assert {r["resolved_by"] for r in resolved} == {"sync:r-sync"}
    assert all(r["resolved_at"].utcoffset() == timedelta(0) for r in resolved)
    assert [
        r["billing_date"] for r in store.list_quarantine(engine, status="open", sync_key="company:250:edr")
    ] == [newer]
    assert store.resolve_synced(engine, "r-sync", DAY, []) == 0
    # the problem coming back opens a fresh row
    store.upsert_quarantine(engine, "r-again", DAY, [q_row()])
    assert store.count_quarantine(engine, billing_date=DAY, sync_key="company:250:edr") == 2


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
    )
    store.upsert_quarantine(engine, "r0", DAY - timedelta(days=30), [q_row()])
    current = {"company:250:edr": "change_exceeds_limit"}
    store.upsert_quarantine(engine, "r2", DAY, [q_row(reason="change_exceeds_limit")])
    seen = ["company:250:edr", "company:251:edr"]  # the organization got mapped: its key is gone
    assert store.resolve_superseded(engine, "r2", DAY, current, seen_keys=seen) == 2
    by_key = {(r["sync_key"], r["reason_code"]): r for r in store.list_quarantine(engine, billing_date=DAY)}
    assert by_key[("company:250:edr", "no_live_addition")]["note"] == "superseded by change_exceeds_limit"
    assert by_key[("company:250:edr", "no_live_addition")]["resolved_by"] == "sync:r2"
    assert by_key[("organization:101:edr", "unmapped_organization")]["note"] == "no longer reported"
    assert by_key[("company:250:edr", "change_exceeds_limit")]["status"] == "open"
    assert by_key[("company:251:edr", "push_rejected")]["status"] == "open"  # left for resolve_synced
    assert store.list_quarantine(engine, billing_date=DAY - timedelta(days=30))[0]["status"] == "open"


def test_set_quarantine_status_records_who_when_and_note(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "r1", DAY, [q_row()])
    [row] = store.list_quarantine(engine)
    before = datetime.now(UTC)
    out = store.set_quarantine_status(engine, row["id"], "resolved", "bob", "fixed the addition by hand")
    assert out["status"] == "resolved" and out["resolved_by"] == "bob"
    assert out["note"] == "fixed the addition by hand" and out["resolved_at"] >= before - timedelta(seconds=1)
    reopened = store.set_quarantine_status(engine, row["id"], "open", "carol", "not fixed")
    assert (
        reopened["status"] == "open" and reopened["resolved_at"] is None and reopened["resolved_by"] is None
    )
    assert reopened["note"] == "reopened by carol: not fixed"
    with pytest.raises(ValueError, match="status must be one of"):
        store.set_quarantine_status(engine, row["id"], "closed", "bob", None)
    with pytest.raises(ValueError, match="user"):
        store.set_quarantine_status(engine, row["id"], "dismissed", " ", None)
    with pytest.raises(store.QuarantineNotFound):
        store.set_quarantine_status(engine, 999_999, "dismissed", "bob", None)
    assert issubclass(store.QuarantineNotFound, LookupError)


def test_reopen_refuses_a_second_open_row(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "r1", DAY, [q_row()])
    [old] = store.list_quarantine(engine)
    store.set_quarantine_status(engine, old["id"], "resolved", "bob", None)
    store.upsert_quarantine(engine, "r2", DAY, [q_row()])
    with pytest.raises(ValueError, match="already open"):
        store.set_quarantine_status(engine, old["id"], "open", "bob", None)


def test_payload_is_strict_json_text(engine: sa.Engine) -> None:
    numpy_int = pd.Series([3], dtype="int64").iloc[0]
    payload = {"nan": float("nan"), "na": pd.NA, "n": numpy_int, "when": DAY, "ids": (1, 2)}
    store.upsert_quarantine(engine, "r1", DAY, [q_row(payload=payload)])
    with engine.connect() as conn:
        raw = conn.execute(sa.select(sa.cast(store.quarantine.c.payload, sa.Text))).scalar_one()
    assert isinstance(raw, str) and "NaN" not in raw
    assert store.list_quarantine(engine)[0]["payload"] == {
        "nan": None,
        "na": None,
        "n": 3,
        "when": "2026-11-01",
        "ids": [1, 2],
    }


def test_upsert_quarantine_validates_rows(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="reason_code"):
        store.upsert_quarantine(engine, "r", DAY, [q_row(reason="because")])
    with pytest.raises(ValueError, match="sync_key"):
        store.upsert_quarantine(engine, "r", DAY, [q_row(key="")])
    assert store.upsert_quarantine(engine, "r", DAY, []) == 0


def test_list_quarantine_filters_and_pages(engine: sa.Engine) -> None:
    rows = [q_row(f"company:{c}:edr", cw_company_id=c) for c in range(300, 310)]
    rows.append(
        q_row("organization:7:edr", "unmapped_organization", cw_company_id=pd.NA, huntress_organization_id=7)
    )
    store.upsert_quarantine(engine, "r1", DAY, rows)
    assert store.count_quarantine(engine) == 11
    assert len(store.list_quarantine(engine, limit=4, offset=8)) == 3
    assert [r["sync_key"] for r in store.list_quarantine(engine, company_id=305)] == ["company:305:edr"]
    [unmapped] = store.list_quarantine(engine, reason_code="unmapped_organization")
    assert unmapped["cw_company_id"] is None and unmapped["huntress_organization_id"] == 7
    assert store.list_quarantine(engine, run_id="other") == []
    assert store.get_quarantine(engine, unmapped["id"])["sync_key"] == "organization:7:edr"
    assert store.get_quarantine(engine, 123_456) is None


# --- ledger ---------------------------------------------------------------------------------------


def test_ledger_upsert_is_idempotent_per_run_and_key(engine: sa.Engine) -> None:
    assert (
        store.record_changes(
            engine, "r1", DAY, [change(action="failed"), change("company:251:edr", "unchanged")]
        )
        == 2
    )
    applied = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    store.record_changes(engine, "r1", DAY, [change(applied_at=applied)])  # the retried push task
    assert store.ledger_count(engine) == 2 and store.ledger_count(engine, "r1") == 2
    first, second = store.changes_for_run(engine, "r1")
    assert (
        first["sync_key"] == "company:250:edr"
        and first["action"] == "updated"
        and first["applied_at"] == applied
    )
    assert first["previous_quantity"] == 38.0 and first["new_quantity"] == 40.0
    assert second["applied_at"].utcoffset() == timedelta(0)
    store.record_changes(engine, "r2", DAY, [change()])
    assert store.ledger_count(engine) == 3 and store.ledger_count(engine, "r2") == 1
    assert len(store.list_changes(engine, billing_date=DAY, action="updated")) == 2
    with pytest.raises(ValueError, match="action"):
        store.record_changes(engine, "r1", DAY, [change(action="deleted")])


# --- runs -----------------------------------------------------------------------------------------


def test_run_lifecycle(engine: sa.Engine) -> None:
    settings = {"dry_run": False, "products": {"edr": "HUNTRESS-EDR"}, "note": INJECTION}
    store.start_run(engine, "manual__1", DAY, 5001, "push", settings)
    store.finish_run(engine, "manual__1", "failed", {"updated": 1})
    time.sleep(0.002)
    store.start_run(engine, "manual__1", DAY, 5001, "push", settings)  # retried: no error, fresh record
    run = store.get_run(engine, "manual__1")
    assert run["status"] == "running" and run["finished_at"] is None and run["counts"] is None
    assert run["settings"] == settings and run["billing_date"] == DAY and run["invoice_id"] == 5001
    counts = {"updated": 3, "unchanged": 5, "quarantined": 2, "no_live_addition": 2}
    checks = {"totals": {"edr": {"huntress": 40, "connectwise": 40}}, "mismatches": []}
    store.finish_run(engine, "manual__1", "success", counts, checks, "/reports/2026-11-01.html")
    run = store.get_run(engine, "manual__1")
    assert (
        run["counts"] == counts
        and run["checks"] == checks
        and run["report_path"] == "/reports/2026-11-01.html"
    )
    assert run["finished_at"] >= run["started_at"] and run["started_at"].utcoffset() == timedelta(0)
    time.sleep(0.002)
    store.start_run(engine, "scheduled__2", DAY + timedelta(days=30), None, "dry_run", {})
    assert [r["run_id"] for r in store.list_runs(engine)] == ["scheduled__2", "manual__1"]
    assert [r["run_id"] for r in store.list_runs(engine, limit=1, offset=1)] == ["manual__1"]
    assert [r["run_id"] for r in store.list_runs(engine, billing_date=DAY)] == ["manual__1"]
    assert store.get_run(engine, "nope") is None
    with pytest.raises(store.RunNotFound):
        store.finish_run(engine, "nope", "success", {})
    with pytest.raises(ValueError, match="mode"):
        store.start_run(engine, "x", DAY, None, "yolo", {})


# --- organization map ---------------------------------------------------------------------------


def test_org_map_set_update_delete(engine: sa.Engine) -> None:
    assert store.org_map_frame(engine).empty
    store.set_org_map(engine, 101, 250, "same customer", "alice")
    store.set_org_map(engine, 102, 251, None, "alice")
    updated = store.set_org_map(engine, 101, 252, "moved", "bob")
    assert updated["cw_company_id"] == 252 and updated["created_by"] == "bob" and updated["note"] == "moved"
    assert updated["created_at"].utcoffset() == timedelta(0)
    rows = store.list_org_map(engine)
    assert [(r["huntress_organization_id"], r["cw_company_id"]) for r in rows] == [(101, 252), (102, 251)]
    df = store.org_map_frame(engine)
    assert dict(df.dtypes.astype(str)) == frames.SCHEMAS["org_map"]
    assert df.to_dict("records") == [
        {"organization_id": 101, "company_id": 252},
        {"organization_id": 102, "company_id": 251},
    ]
    assert store.delete_org_map(engine, 101) is True
    assert store.delete_org_map(engine, 101) is False
    with pytest.raises(ValueError, match="company_id"):
        store.set_org_map(engine, 103, "acme", None, "bob")


# --- parameterization -----------------------------------------------------------------------------


def test_hostile_text_round_trips_everywhere(engine: sa.Engine) -> None:
    store.upsert_quarantine(
        engine,
        INJECTION,
        DAY,
        [
            q_row(
                INJECTION,
                huntress_organization_name=INJECTION,
                detail=INJECTION,
                payload={INJECTION: INJECTION},
            )
        ],
    )
    [row] = store.list_quarantine(engine, sync_key=INJECTION, run_id=INJECTION)
    assert row["detail"] == INJECTION and row["payload"] == {INJECTION: INJECTION}
    store.set_quarantine_status(engine, row["id"], "dismissed", INJECTION, INJECTION)
    store.set_org_map(engine, 7, 8, INJECTION, INJECTION)
    assert store.list_org_map(engine)[0]["note"] == INJECTION
    store.record_changes(engine, INJECTION, DAY, [change(INJECTION, product=INJECTION)])
    assert store.changes_for_run(engine, INJECTION)[0]["product"] == INJECTION
    df = frames.conform(
        pd.DataFrame({"company_id": [1], "identifier": [INJECTION], "name": ["x"]}), "companies"
    )
    store.write_frame(engine, INJECTION, "companies", df)
    pd.testing.assert_frame_equal(store.read_frame(engine, INJECTION, "companies"), df)
    assert "billing_quarantine" in sa.inspect(engine).get_table_names()
    assert store.count_quarantine(engine) == 1


def test_staging_tables_of_an_older_version_gain_new_columns(db_url: str) -> None:
    """A billing database whose organizations staging table predates account_id is upgraded in place."""
    eng = store.make_engine(db_url)
    old = sa.MetaData()
    sa.Table("billing_stg_organizations", old, sa.Column("run_id", sa.Text, primary_key=True),
             sa.Column("organization_id", sa.BigInteger), sa.Column("name", sa.Text), sa.Column("key", sa.Text),
             sa.Column(store.ROW_COLUMN, sa.Integer, primary_key=True, autoincrement=False))
    old.create_all(eng)
    with eng.begin() as conn:
        conn.execute(sa.insert(old.tables["billing_stg_organizations"]).values(
            run_id="old", organization_id=1, name="A", key="a", **{store.ROW_COLUMN: 0}))
    store.ensure_schema(eng)
    orgs = frames.organizations_frame([{"id": 2, "name": "B", "key": "b", "account_id": 7}])
    store.write_frame(eng, "new", "organizations", orgs)
    assert store.read_frame(eng, "new", "organizations")["account_id"].tolist() == [7]
    assert store.read_frame(eng, "old", "organizations")["account_id"].isna().all()
    eng.dispose()
