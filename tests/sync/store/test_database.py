"""store/database.py: engines, transactions, concurrent writers."""

from __future__ import annotations

import threading

import pandas as pd
import sqlalchemy as sa

from billing_sync import store
from tests.sync.store import DAY, change, q_row, sample_frame


def test_default_url_points_into_airflow_home(tmp_path) -> None:
    assert store.default_url(tmp_path) == f"sqlite:///{tmp_path}/billing_sync.db"


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
                store.write_frame(eng, f"run-{i}", "usage", df, tenant="default")
                store.upsert_quarantine(
                    eng, f"run-{i}", DAY, [q_row()], tenant="default"
                )  # the same key from every task
                store.record_changes(eng, f"run-{i}", DAY, [change()], tenant="default")
                assert len(store.read_frame(eng, f"run-{i}", "usage", tenant="default")) == len(df)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=task, args=(i, e)) for i, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert store.count_quarantine(engines[0], status="open", tenant="default") == 1
    assert store.ledger_count(engines[0], tenant="default") == len(engines)
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
