"""billing_organizations_seen: which organizations of a run's invoice are new, and the record push
runs keep of them (docs/contract.md §4 "New organizations"; issue 11 §7). SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
import sqlalchemy as sa

from billing_sync import frames, store

NOV, DEC = "2026-11-01", "2026-12-01"


def stage(
    engine: sa.Engine,
    run_id: str,
    day: str,
    lines: list[tuple[int | None, str | None]],
    orgs=(),
    tenant: str = store.DEFAULT_TENANT,
) -> None:
    """A run of `tenant` whose invoice has one line per (organization id, name on the line)."""
    store.start_run(engine, run_id, day, 5001, "push", {}, tenant=tenant)
    usage = frames.usage_frame(
        5001,
        [
            {
                "id": i + 1,
                "organization": {"id": o, "name": n} if o is not None else None,
                "actual_usage": {"edr": 1},
            }
            for i, (o, n) in enumerate(lines)
        ],
        ["edr", "sat"],
    )
    store.write_frame(engine, run_id, "usage", usage, tenant=tenant)
    store.write_frame(engine, run_id, "organizations", frames.organizations_frame(orgs), tenant=tenant)


def ids(rows: list[dict[str, Any]]) -> list[int]:
    return [r["id"] for r in rows]


def seen(engine: sa.Engine, **kw: Any) -> dict[int, tuple[date, str, str | None]]:
    return {
        r["huntress_organization_id"]: (r["first_billing_date"], r["first_run_id"], r["name"])
        for r in store.list_organizations_seen(engine, **{"tenant": "default", **kw})
    }


def test_the_invoice_names_each_organization_once_in_its_order(engine: sa.Engine) -> None:
    stage(
        engine,
        "r1",
        NOV,
        [(3, "Gamma"), (None, "no id"), (1, None), (3, "Gamma again"), (2, "Beta")],
        orgs=[{"id": 1, "name": "Alpha (from /organizations)"}, {"id": 9, "name": "Not on the invoice"}],
    )
    assert store.invoice_organizations(engine, "r1", tenant="default") == [
        {"id": 3, "name": "Gamma"},
        {"id": 1, "name": "Alpha (from /organizations)"},  # the line names none: the staged one's
        {"id": 2, "name": "Beta"},
    ]
    assert store.invoice_organizations(engine, "no such run", tenant="default") == []


def test_first_run_all_new_then_only_the_added_one(engine: sa.Engine) -> None:
    stage(engine, "nov", NOV, [(1, "A"), (2, "B")])
    assert ids(store.new_organizations(engine, "nov", tenant="default")) == [1, 2]
    assert store.record_organizations_seen(engine, "nov", NOV, tenant="default") == 2
    # A retried record_run answers as its first attempt did; recording again adds nothing.
    assert ids(store.new_organizations(engine, "nov", tenant="default")) == [1, 2]
    assert store.record_organizations_seen(engine, "nov", NOV, tenant="default") == 0

    stage(engine, "dec", DEC, [(1, "A"), (2, "B"), (3, "C")])
    assert ids(store.new_organizations(engine, "dec", tenant="default")) == [3]
    store.record_organizations_seen(engine, "dec", DEC, tenant="default")
    assert seen(engine) == {
        1: (date(2026, 11, 1), "nov", "A"),
        2: (date(2026, 11, 1), "nov", "B"),
        3: (date(2026, 12, 1), "dec", "C"),
    }
    # A re-run of December (another run id) finds nothing new.
    stage(engine, "dec-again", DEC, [(1, "A"), (2, "B"), (3, "C")])
    assert store.new_organizations(engine, "dec-again", tenant="default") == []


def test_a_backfill_of_an_older_date_finds_later_organizations_seen(engine: sa.Engine) -> None:
    """Installed in December: every organization is new then. A run of November afterwards (C was
    on that invoice too, Z only there) finds only Z new; recording it moves C's first billing date
    back to November, keeps the run that saw it first, and adds Z."""
    stage(engine, "dec", DEC, [(1, "A"), (3, "C")])
    store.record_organizations_seen(engine, "dec", DEC, tenant="default")

    stage(engine, "nov-backfill", NOV, [(3, "C"), (26, "Z")])
    assert ids(store.new_organizations(engine, "nov-backfill", tenant="default")) == [26]
    assert store.record_organizations_seen(engine, "nov-backfill", NOV, tenant="default") == 1
    assert seen(engine) == {
        1: (date(2026, 12, 1), "dec", "A"),
        3: (date(2026, 11, 1), "dec", "C"),
        26: (date(2026, 11, 1), "nov-backfill", "Z"),
    }
    # A later date never moves the first billing date forward.
    store.record_organizations_seen(engine, "dec", DEC, tenant="default")
    assert seen(engine)[3][0] == date(2026, 11, 1)
    assert ids(store.new_organizations(engine, "dec", tenant="default")) == [
        1,
        3,
    ]  # still the ones it recorded first


def test_tenants_keep_their_own_record(engine: sa.Engine) -> None:
    stage(engine, "r1", NOV, [(1, "A")], tenant="north")
    store.record_organizations_seen(engine, "r1", NOV, tenant="north")
    assert ids(store.new_organizations(engine, "r1", tenant="north")) == [1]
    stage(engine, "r2", DEC, [(1, "A")], tenant="north")
    stage(engine, "r2", DEC, [(1, "A")])  # the same run id in the default tenant's DAG
    assert store.new_organizations(engine, "r2", tenant="north") == []
    assert ids(store.new_organizations(engine, "r2", tenant="default")) == [
        1
    ]  # the default tenant never saw it
    assert seen(engine) == {}
    assert list(seen(engine, tenant="north")) == [1]
    assert store.list_organizations_seen(engine, tenant="north", organization_ids=[2]) == []
    with pytest.raises(ValueError, match="tenant"):
        store.new_organizations(engine, "r1", tenant="North")


def test_many_organizations_in_chunks(engine: sa.Engine) -> None:
    lines = [(i, f"Org {i}") for i in range(1, 1201)]
    stage(engine, "big", NOV, lines)
    assert store.record_organizations_seen(engine, "big", NOV, tenant="default") == 1200
    stage(engine, "next", DEC, [*lines, (5000, "New")])
    assert store.new_organizations(engine, "next", tenant="default") == [{"id": 5000, "name": "New"}]
