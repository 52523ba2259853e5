"""store/staging.py: per-run frames round-trip exactly, fast, and are purged."""

from __future__ import annotations

import time

import pandas as pd
import pytest
import sqlalchemy as sa

from billing_sync import frames, store
from tests.sync.store import DAY, sample_frame


@pytest.mark.parametrize("name", sorted(frames.SCHEMAS))
def test_frame_round_trip_keeps_dtypes_and_na(engine: sa.Engine, name: str) -> None:
    df = sample_frame(name)
    assert store.write_frame(engine, "run-1", name, df, tenant="default") == 4
    back = store.read_frame(engine, "run-1", name, tenant="default")
    pd.testing.assert_frame_equal(back, df)
    assert dict(back.dtypes.astype(str)) == frames.SCHEMAS[name]
    assert back.iloc[2].isna().all()


def test_rewriting_a_run_replaces_only_that_run(engine: sa.Engine) -> None:
    df = sample_frame("usage")
    store.write_frame(engine, "run-a", "usage", df, tenant="default")
    store.write_frame(engine, "run-b", "usage", df.iloc[:2], tenant="default")
    store.write_frame(engine, "run-a", "usage", df.iloc[[3, 0]], tenant="default")
    pd.testing.assert_frame_equal(
        store.read_frame(engine, "run-a", "usage", tenant="default"), df.iloc[[3, 0]].reset_index(drop=True)
    )
    pd.testing.assert_frame_equal(store.read_frame(engine, "run-b", "usage", tenant="default"), df.iloc[:2])
    store.write_frame(engine, "run-a", "usage", frames.empty("usage"), tenant="default")
    assert store.read_frame(engine, "run-a", "usage", tenant="default").empty


def test_escape_like_strings_are_data_not_markers(engine: sa.Engine) -> None:
    tricky = ["\\N", "", "a\\tb\tc", "\\", "line1\r\nline2", None]
    df = frames.conform(
        pd.DataFrame({"company_id": range(6), "identifier": tricky, "name": list(reversed(tricky))}),
        "companies",
    )
    store.write_frame(engine, "r", "companies", df, tenant="default")
    back = store.read_frame(engine, "r", "companies", tenant="default")
    pd.testing.assert_frame_equal(back, df)
    assert back["identifier"].isna().tolist() == [False] * 5 + [True]


def test_missing_frame_reads_as_empty_with_dtypes(engine: sa.Engine) -> None:
    back = store.read_frame(engine, "never", "additions", tenant="default")
    assert back.empty
    assert dict(back.dtypes.astype(str)) == frames.SCHEMAS["additions"]


def test_write_frame_refuses_unknown_frames_and_missing_columns(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="unknown frame"):
        store.write_frame(engine, "r", "nope", pd.DataFrame(), tenant="default")
    with pytest.raises(ValueError, match="missing column"):
        store.write_frame(engine, "r", "companies", pd.DataFrame({"company_id": [1]}), tenant="default")


def test_100k_usage_rows_write_and_read_in_batches(engine: sa.Engine) -> None:
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
    # Row-by-row inserts are what make staging slow; count statements, not seconds (no test
    # depends on the machine's speed; `make bench` times it).
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    store.write_frame(engine, "big", "usage", df, tenant="default")
    back = store.read_frame(engine, "big", "usage", tenant="default")
    pd.testing.assert_frame_equal(back, df)
    assert len(statements) < 200, f"{len(statements)} statements for {n} rows"


def test_purge_staging_keeps_newest_and_running_runs(engine: sa.Engine) -> None:
    df = sample_frame("companies")
    for i in range(4):
        store.start_run(engine, f"r{i}", DAY, 1, "push", {}, tenant="default")
        store.write_frame(engine, f"r{i}", "companies", df, tenant="default")
        if i != 0:
            store.finish_run(engine, f"r{i}", "success", {}, tenant="default")
        time.sleep(0.002)  # distinct started_at
    store.write_frame(engine, "unrecorded", "companies", df, tenant="default")
    assert store.purge_staging(engine, keep_runs=2) == 4  # r1 only: r0 is still running
    assert store.read_frame(engine, "r1", "companies", tenant="default").empty
    for run_id in ("r0", "r2", "r3", "unrecorded"):
        assert len(store.read_frame(engine, run_id, "companies", tenant="default")) == 4


def test_pages_and_applies_read_only_finished_full_runs(engine: sa.Engine) -> None:
    """Issue 20 §2: the newest *complete* staging. A full run still staging (its companies not yet
    written) and an apply's subset (billing_runs.scope set) are passed over; so is a finished full
    run that never reached its outcomes, for an apply that needs them."""
    store.ensure_schema(engine)
    df = sample_frame("organizations")
    store.start_run(engine, "full", DAY, 1, "push", {}, tenant="default")
    for name in ("organizations", "outcomes"):
        store.write_frame(engine, "full", name, sample_frame(name), tenant="default")
    store.finish_run(engine, "full", "success", {}, tenant="default")
    scope = {"billing_date": str(DAY), "companies": [1], "organizations": []}
    store.start_run(engine, "apply", DAY, 1, "push", {}, tenant="default", scope=scope)
    for name in ("organizations", "outcomes"):
        store.write_frame(engine, "apply", name, sample_frame(name), tenant="default")
    store.finish_run(engine, "apply", "success", {}, tenant="default")
    store.start_run(engine, "half", DAY, 1, "push", {}, tenant="default")
    store.write_frame(engine, "half", "organizations", df, tenant="default")
    store.start_run(engine, "failed_early", DAY, 1, "push", {}, tenant="default")
    store.write_frame(engine, "failed_early", "organizations", df, tenant="default")
    store.finish_run(engine, "failed_early", "failed", {}, tenant="default")

    assert store.get_run(engine, "apply", tenant="default")["scope"] == scope
    assert store.get_run(engine, "full", tenant="default")["scope"] is None
    # The pages: the newest finished full run that staged organizations (a failed one did).
    assert store.newest_staged_run(engine, "organizations", tenant="default") == "failed_early"
    # The apply: the newest finished full run that reconciled.
    assert store.newest_reconciled_run(engine, DAY, tenant="default")["run_id"] == "full"
    assert store.newest_reconciled_run(engine, "2020-01-01", tenant="default") is None
    assert store.newest_reconciled_run(engine, DAY, tenant="other") is None
