"""store/ledger.py: one ledger row per run and key."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from billing_sync import store
from tests.sync.store import DAY, change


def test_ledger_upsert_is_idempotent_per_run_and_key(engine: sa.Engine) -> None:
    assert (
        store.record_changes(
            engine,
            "r1",
            DAY,
            [change(action="failed"), change("company:251:edr", "unchanged")],
            tenant="default",
        )
        == 2
    )
    applied = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)
    store.record_changes(
        engine, "r1", DAY, [change(applied_at=applied)], tenant="default"
    )  # the retried push task
    assert (
        store.ledger_count(engine, tenant="default") == 2
        and store.ledger_count(engine, "r1", tenant="default") == 2
    )
    first, second = store.changes_for_run(engine, "r1", tenant="default")
    assert (
        first["sync_key"] == "company:250:edr"
        and first["action"] == "updated"
        and first["applied_at"] == applied
    )
    assert first["previous_quantity"] == 38.0 and first["new_quantity"] == 40.0
    assert second["applied_at"].utcoffset() == timedelta(0)
    store.record_changes(engine, "r2", DAY, [change()], tenant="default")
    assert (
        store.ledger_count(engine, tenant="default") == 3
        and store.ledger_count(engine, "r2", tenant="default") == 1
    )
    assert len(store.list_changes(engine, billing_date=DAY, action="updated", tenant="default")) == 2
    with pytest.raises(ValueError, match="action"):
        store.record_changes(engine, "r1", DAY, [change(action="deleted")], tenant="default")
