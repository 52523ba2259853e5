"""Issue 19 §4: forgetting the tenant is impossible, not just tested against.

Every store function that touches a tenant's rows requires `tenant` (keyword-only, no default), and
the run path holds a handle bound to its tenant, run id and billing date.
"""

from __future__ import annotations

import inspect
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from billing_sync import frames, store

# Functions of the store that hold no tenant's rows: the database itself, the API accounts' shared
# rate-limit window (per account, whatever the tenant), housekeeping over every tenant, pure helpers.
TENANT_FREE = {
    "default_url",
    "engine_for",
    "ensure_schema",
    "make_engine",
    "purge_staging",
    "recent_api_calls",
    "record_api_calls",
    "org_map_rows_frame",
    "quarantine_order",
    "quarantine_group_order",
    "staging_table",
}
DAY = date(2026, 11, 1)


def store_functions() -> list[str]:
    return sorted(
        name for name in store.__all__ if inspect.isfunction(getattr(store, name)) and name not in TENANT_FREE
    )


@pytest.mark.parametrize("name", store_functions())
def test_every_store_function_of_a_tenants_rows_requires_the_tenant(name: str) -> None:
    tenant = inspect.signature(getattr(store, name)).parameters.get("tenant")
    assert tenant is not None, f"store.{name} takes no tenant"
    assert tenant.kind is inspect.Parameter.KEYWORD_ONLY, f"store.{name}: tenant must be keyword-only"
    assert tenant.default is inspect.Parameter.empty, f"store.{name}: tenant has a default"


def test_the_list_of_tenant_free_functions_names_only_what_exists() -> None:
    assert TENANT_FREE <= set(store.__all__)
    for name in TENANT_FREE - {"staging_table"}:
        assert "tenant" not in inspect.signature(getattr(store, name)).parameters, name


def test_a_handle_cannot_be_made_without_a_tenant_or_with_a_bad_one(engine: sa.Engine) -> None:
    with pytest.raises(TypeError):
        store.TenantStore(engine)  # type: ignore[call-arg]
    for bad in ("", "North", "a-b", None):
        with pytest.raises(ValueError):
            store.TenantStore(engine, bad)
    with pytest.raises(ValueError):
        store.TenantStore(engine, "north").run("", DAY)


def test_a_run_handle_reads_and_writes_only_its_own_tenants_rows(engine: sa.Engine) -> None:
    """Both tenants' DAGs have the same run id: each handle sees its own tenant's rows alone."""
    north = store.TenantStore(engine, "north").run("scheduled__2026-11-01", DAY)
    south = store.TenantStore(engine, "south").run("scheduled__2026-11-01", "2026-11-01")
    for db, n in ((north, 3), (south, 5)):
        db.start(None, "push", {})
        companies = {c: [None] * n for c in frames.SCHEMAS["companies"]} | {"company_id": list(range(n))}
        db.write_frame("companies", pd.DataFrame(companies))
        db.upsert_quarantine(
            [
                {
                    "sync_key": f"organization:{i}:edr",
                    "reason_code": "unmapped_organization",
                    "huntress_organization_id": i,
                    "product": "edr",
                }
                for i in range(n)
            ]
        )
    assert len(north.read_frame("companies")) == 3 and len(south.read_frame("companies")) == 5
    assert len(north.quarantine_rows()) == 3 and len(south.quarantine_rows()) == 5
    assert {r["tenant"] for r in north.quarantine_rows()} == {"north"}
    north.finish("success", {"quarantined": 3})
    assert (north.record() or {})["status"] == "success"
    assert (south.record() or {})["status"] == "running"
