"""store: hostile text is data everywhere (every value travels as a bound parameter)."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa

from billing_sync import frames, store
from tests.sync.store import DAY, INJECTION, change, q_row


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
        tenant="default",
    )
    [row] = store.list_quarantine(engine, sync_key=INJECTION, run_id=INJECTION, tenant="default")
    assert row["detail"] == INJECTION and row["payload"] == {INJECTION: INJECTION}
    store.set_quarantine_status(engine, row["id"], "dismissed", INJECTION, INJECTION, tenant="default")
    store.set_org_map(engine, 7, 8, INJECTION, INJECTION, tenant="default")
    assert store.list_org_map(engine, tenant="default")[0]["note"] == INJECTION
    store.record_changes(engine, INJECTION, DAY, [change(INJECTION, product=INJECTION)], tenant="default")
    assert store.changes_for_run(engine, INJECTION, tenant="default")[0]["product"] == INJECTION
    df = frames.conform(
        pd.DataFrame({"company_id": [1], "identifier": [INJECTION], "name": ["x"]}), "companies"
    )
    store.write_frame(engine, INJECTION, "companies", df, tenant="default")
    pd.testing.assert_frame_equal(store.read_frame(engine, INJECTION, "companies", tenant="default"), df)
    assert "billing_quarantine" in sa.inspect(engine).get_table_names()
    assert store.count_quarantine(engine, tenant="default") == 1
