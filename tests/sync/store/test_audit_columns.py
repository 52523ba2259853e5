"""Who decided: every audit column records the user's id beside the display name, and billing
databases made before those id columns existed gain them in place, rows and all."""

from __future__ import annotations

from datetime import UTC, date, datetime

import sqlalchemy as sa

from billing_sync import store
from tests.sync.store import pre_alembic

DAY = "2026-11-01"
ROW = {
    "sync_key": "company:10:edr",
    "reason_code": "no_live_addition",
    "cw_company_id": 10,
    "product": "edr",
    "detail": "no addition",
    "payload": {},
}


def test_decisions_record_name_and_id(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "r1", DAY, [ROW], tenant="default")
    [row] = store.list_quarantine(engine, tenant="default")
    done = store.set_quarantine_status(
        engine, row["id"], "dismissed", "Jane Doe", "known", user_id="42", tenant="default"
    )
    assert (done["resolved_by"], done["resolved_by_id"]) == ("Jane Doe", "42")
    reopened = store.set_quarantine_status(
        engine, row["id"], "open", "Jane Doe", user_id="42", tenant="default"
    )
    assert (reopened["resolved_by"], reopened["resolved_by_id"]) == (None, None)

    mapped = store.set_org_map(engine, 7, 10, None, "Jane Doe", user_id="42", tenant="default")
    assert (mapped["created_by"], mapped["created_by_id"]) == ("Jane Doe", "42")
    changed = store.set_org_map(engine, 7, 11, None, "Raj", user_id="43", tenant="default")
    assert (changed["created_by"], changed["created_by_id"]) == ("Raj", "43")


def test_the_sync_records_itself_in_both_columns(engine: sa.Engine) -> None:
    store.upsert_quarantine(engine, "r1", DAY, [ROW], tenant="default")
    store.resolve_synced(engine, "r2", DAY, [ROW["sync_key"]], tenant="default")
    [row] = store.list_quarantine(engine, tenant="default")
    assert (row["resolved_by"], row["resolved_by_id"]) == ("sync:r2", "sync:r2")


def test_older_databases_gain_the_id_columns_in_place(db_url: str) -> None:
    """billing_quarantine and billing_org_map as 0.1.0 made them (no *_by_id), with rows in them."""
    eng = store.make_engine(db_url)
    old = sa.MetaData()
    quarantine = sa.Table(
        "billing_quarantine",
        old,
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
            for c in pre_alembic.quarantine.columns
            if c.name != "resolved_by_id"
        ),
    )
    org_map = sa.Table(
        "billing_org_map",
        old,
        *(
            sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, autoincrement=False)
            for c in pre_alembic.org_map.columns
            if c.name != "created_by_id"
        ),
    )
    old.create_all(eng)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    with eng.begin() as conn:
        conn.execute(
            quarantine.insert().values(
                run_id="old",
                billing_date=date(2026, 11, 1),
                reason_code="no_live_addition",
                status="dismissed",
                first_seen_at=now,
                last_seen_at=now,
                resolved_at=now,
                resolved_by="carol",
                sync_key="company:10:edr",
            )
        )
        conn.execute(
            org_map.insert().values(
                huntress_organization_id=1, cw_company_id=10, created_by="carol", created_at=now
            )
        )

    store.ensure_schema(eng)
    store.ensure_schema(eng)  # idempotent
    columns = {
        t: {c["name"] for c in sa.inspect(eng).get_columns(t)}
        for t in ("billing_quarantine", "billing_org_map")
    }
    assert "resolved_by_id" in columns["billing_quarantine"]
    assert "created_by_id" in columns["billing_org_map"]

    [kept] = store.list_quarantine(eng, tenant="default")
    assert (kept["resolved_by"], kept["resolved_by_id"], kept["status"]) == ("carol", None, "dismissed")
    assert store.list_org_map(eng, tenant="default")[0]["created_by_id"] is None
    store.set_quarantine_status(eng, kept["id"], "resolved", "Dan", user_id="7", tenant="default")
    assert store.get_quarantine(eng, kept["id"], tenant="default")["resolved_by_id"] == "7"
    assert store.set_org_map(eng, 1, 11, None, "Dan", user_id="7", tenant="default")["created_by_id"] == "7"
    eng.dispose()
