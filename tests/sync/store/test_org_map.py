"""store/org_mapping.py: the manual organization → company map."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from billing_sync import frames, store


def test_org_map_set_update_delete(engine: sa.Engine) -> None:
    assert store.org_map_frame(engine, tenant="default").empty
    store.set_org_map(engine, 101, 250, "same customer", "alice", tenant="default")
    store.set_org_map(engine, 102, 251, None, "alice", tenant="default")
    updated = store.set_org_map(engine, 101, 252, "moved", "bob", tenant="default")
    assert updated["cw_company_id"] == 252 and updated["created_by"] == "bob" and updated["note"] == "moved"
    assert updated["created_at"].utcoffset() == timedelta(0)
    rows = store.list_org_map(engine, tenant="default")
    assert [(r["huntress_organization_id"], r["cw_company_id"]) for r in rows] == [(101, 252), (102, 251)]
    df = store.org_map_frame(engine, tenant="default")
    assert dict(df.dtypes.astype(str)) == frames.SCHEMAS["org_map"]
    assert df.to_dict("records") == [
        {"organization_id": 101, "company_id": 252},
        {"organization_id": 102, "company_id": 251},
    ]
    assert store.delete_org_map(engine, 101, tenant="default") is True
    assert store.delete_org_map(engine, 101, tenant="default") is False
    with pytest.raises(ValueError, match="company_id"):
        store.set_org_map(engine, 103, "acme", None, "bob", tenant="default")
