"""store.override_rules: `billing_overrides`, added, listed and retired (docs/contract.md §4)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from billing_sync import store

MINIMUM: dict[str, Any] = {
    "cw_company_id": 250,
    "product": "edr",
    "rule": "minimum",
    "quantity": 25,
    "note": "contract floor",
    "user": "Jane Doe",
    "user_id": "42",
}


def test_an_override_is_recorded_active_with_who_and_when(engine: sa.Engine) -> None:
    row = store.add_override(engine, **MINIMUM, tenant="default")
    assert (row["rule"], row["quantity"], row["active"], row["tenant"]) == ("minimum", 25.0, True, "default")
    assert (row["created_by"], row["created_by_id"], row["note"]) == ("Jane Doe", "42", "contract floor")
    assert row["created_at"].tzinfo is not None
    assert store.list_overrides(engine, tenant="default") == [row]
    assert store.list_overrides(engine, cw_company_id=250, product="edr", tenant="default") == [row]
    assert store.list_overrides(engine, product="sat", tenant="default") == []


def test_exclude_takes_no_quantity(engine: sa.Engine) -> None:
    row = store.add_override(
        engine, cw_company_id=251, product="siem", rule="exclude", user="Jane", tenant="default"
    )
    assert (row["rule"], row["quantity"]) == ("exclude", None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rule": "maximum"}, "rule must be one of"),
        ({"quantity": None}, "a minimum override needs a quantity"),
        ({"rule": "fixed", "quantity": None}, "a fixed override needs a quantity"),
        ({"rule": "exclude"}, "an exclude override takes no quantity"),
        ({"quantity": -3}, "quantity must be a non-negative number"),
        ({"cw_company_id": None}, "cw_company_id must be an integer id"),
        ({"product": ""}, "product is required"),
        ({"user": ""}, "user is required"),
        ({"tenant": "a-b"}, "tenant must be"),
    ],
)
def test_what_an_override_must_say(engine: sa.Engine, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        store.add_override(engine, **{"tenant": "default", **MINIMUM, **change})
    assert store.list_overrides(engine, active=None, tenant="default") == []


def test_one_active_override_per_company_and_product(engine: sa.Engine) -> None:
    first = store.add_override(engine, **MINIMUM, tenant="default")
    with pytest.raises(store.OverrideConflict, match="retire it first"):
        store.add_override(engine, **{**MINIMUM, "rule": "fixed", "quantity": 30}, tenant="default")
    store.add_override(engine, **{**MINIMUM, "product": "itdr"}, tenant="default")
    store.add_override(engine, **{**MINIMUM, "tenant": "north"})
    assert len(store.list_overrides(engine, tenant="default")) == 2
    assert len(store.list_overrides(engine, tenant="north")) == 1

    retired = store.retire_override(engine, first["id"], tenant="default")
    assert retired["active"] is False
    assert store.retire_override(engine, first["id"], tenant="default") == retired  # again: nothing changes
    fixed = store.add_override(engine, **{**MINIMUM, "rule": "fixed", "quantity": 30}, tenant="default")
    assert [o["id"] for o in store.list_overrides(engine, product="edr", tenant="default")] == [fixed["id"]]
    assert [o["id"] for o in store.list_overrides(engine, product="edr", active=False, tenant="default")] == [
        first["id"]
    ]
    assert (
        len(store.list_overrides(engine, active=None, tenant="default")) == 3
    )  # the default tenant's, retired too


def test_retiring_an_unknown_override(engine: sa.Engine) -> None:
    with pytest.raises(store.OverrideNotFound):
        store.retire_override(engine, 999, tenant="default")
