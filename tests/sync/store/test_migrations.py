"""store/migrations: the billing database's schema changes as Alembic revisions (docs/contract.md §4).

A new database is built at the newest revision at once, exactly as replaying every revision builds
it; one made before the migrations (0.1.0, `pre_alembic`) is caught up, stamped at the baseline and
upgraded in place with every row kept; the newest revision is exactly what `schema.py` declares; a
second run changes nothing.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from billing_sync import store
from billing_sync.store import migrations, schema
from tests.sync.store import pre_alembic

# docs/contract.md §4, extensions included: every column each table must have at the newest revision.
CONTRACT_COLUMNS = {
    "billing_quarantine": (
        "id run_id billing_date huntress_organization_id huntress_organization_name cw_company_id product "
        "reason_code detail payload status first_seen_at last_seen_at resolved_at resolved_by note "
        "sync_key resolved_by_id tenant amount_at_stake catalog_identifier"
    ),
    "billing_changes": (
        "id run_id billing_date cw_company_id agreement_id addition_id product huntress_quantity "
        "previous_quantity new_quantity action applied_at sync_key tenant unit_price monthly_amount_delta "
        "approval_id catalog_identifier"
    ),
    "billing_runs": (
        "run_id billing_date invoice_id mode started_at finished_at status counts checks report_path "
        "settings tenant scope"
    ),
    "billing_org_map": "huntress_organization_id cw_company_id note created_by created_at created_by_id tenant",
    "billing_approvals": (
        "id tenant billing_date sync_key cw_company_id product kind addition_id agreement_id from_quantity "
        "to_quantity status approved_by approved_by_id approved_at note applied_run_id applied_at"
    ),
    "billing_overrides": (
        "id tenant cw_company_id product rule quantity note created_by created_by_id created_at active"
    ),
    "billing_organizations_seen": (
        "tenant huntress_organization_id name first_billing_date first_run_id first_seen_at"
    ),
    "billing_api_calls": "api account started_epoch calls",
    "billing_decisions": (
        "id tenant at actor_id actor_name kind subject subject_id before after note quarantine_id sync_key "
        "huntress_organization_id cw_company_id product approval_id override_id"
    ),
}
TENANT_TABLES = ("billing_quarantine", "billing_changes", "billing_runs", "billing_org_map")


def shape(engine: sa.Engine) -> dict[str, Any]:
    """The billing tables as the database reports them: columns with type, nullability and default;
    primary key; indexes (with their WHERE); unique and CHECK constraints.

    Columns are compared by name, not position: a column a revision adds goes last (ALTER TABLE ADD
    COLUMN), where a new database has it where schema.py declares it, and nothing reads a billing
    table by column position (SQLAlchemy names every column)."""
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        if not table.startswith("billing_") or table == migrations.VERSION_TABLE:
            continue
        indexes = [
            (
                i["name"],
                tuple(i["column_names"]),
                bool(i["unique"]),
                sorted((k, str(v)) for k, v in i.get("dialect_options", {}).items()),
            )
            for i in insp.get_indexes(table)
        ]
        out[table] = {
            "columns": sorted(
                (c["name"], str(c["type"]), c["nullable"], c.get("default")) for c in insp.get_columns(table)
            ),
            "pk": tuple(insp.get_pk_constraint(table)["constrained_columns"]),
            "indexes": sorted(indexes),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "checks": sorted((c["name"], c["sqltext"]) for c in insp.get_check_constraints(table)),
        }
    out["(triggers)"] = triggers(engine)
    return out


def triggers(engine: sa.Engine) -> list[tuple[str, ...]]:
    """The triggers on the billing tables with their definitions, and (PostgreSQL) the functions
    beside them: the reflection above does not see them (billing_decisions is append-only by one)."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(
                sa.text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            )
            return sorted(tuple(r) for r in rows)
        rows = conn.execute(
            sa.text(
                "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid) FROM pg_trigger t "
                "JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal "
                "AND c.relnamespace = current_schema()::regnamespace "
                "UNION ALL SELECT p.proname, '(function)', p.prosrc FROM pg_proc p "
                "WHERE p.pronamespace = current_schema()::regnamespace"
            )
        ).all()
        # Each database is a schema of its own: its name is no part of the shape.
        prefix = conn.execute(sa.text("SELECT current_schema()")).scalar_one() + "."
        return sorted(tuple(str(v).replace(prefix, "") for v in r) for r in rows)


def canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=repr)


def revision(engine: sa.Engine) -> str | None:
    with engine.connect() as conn:
        return migrations.current_revision(conn)


def upgrade_to(engine: sa.Engine, target: str) -> None:
    with engine.begin() as conn:
        migrations.upgrade(conn, target)


def replay_every_revision(engine: sa.Engine) -> None:
    """What a new database got before it was built at head at once: Alembic runs 0001 to the newest."""
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(migrations.config(conn), "head")


def version_table(engine: sa.Engine) -> dict[str, Any]:
    insp = sa.inspect(engine)
    return {
        "columns": [
            (c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(migrations.VERSION_TABLE)
        ],
        "pk": insp.get_pk_constraint(migrations.VERSION_TABLE),
    }


@pytest.fixture
def other_url(db_url: str, tmp_path: Any) -> Iterator[str]:
    """A second empty database of the same kind as `db_url` (SQLite file, or PostgreSQL schema)."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'other.db'}"
        return
    base, _, current = db_url.rpartition("search_path%3D")
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(db_url)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    yield f"{base}search_path%3D{name}"
    with admin.begin() as conn:
        conn.execute(sa.schema.DropSchema(name, cascade=True))
    admin.dispose()


@pytest.fixture
def old(db_url: str) -> Any:
    """A database as 0.1.0 left it, with rows in every kind of table."""
    eng = store.make_engine(db_url)
    pre_alembic.create(eng)
    rows = pre_alembic.fill(eng)
    yield eng, rows
    eng.dispose()


def test_the_head_constant_is_the_newest_revision_of_one_line() -> None:
    script = ScriptDirectory.from_config(migrations.config())
    assert script.get_heads() == [migrations.HEAD]
    assert [s.revision for s in script.walk_revisions()] == [
        "0011",
        "0010",
        "0009",
        "0008",
        "0007",
        "0006",
        "0005",
        "0004",
        "0003",
        "0002",
        migrations.BASELINE,
    ]


def test_a_new_database_reaches_head_with_every_contract_column(engine: sa.Engine) -> None:
    store.ensure_schema(engine)
    assert revision(engine) == migrations.HEAD
    have = shape(engine)
    for table, columns in CONTRACT_COLUMNS.items():
        names = [c[0] for c in have[table]["columns"]]
        assert set(columns.split()) <= set(names), (table, set(columns.split()) - set(names))
    assert {f"billing_stg_{name}" for name in schema.STAGING} <= set(have)
    assert have["billing_org_map"]["pk"] == ("tenant", "huntress_organization_id")
    assert have["billing_organizations_seen"]["pk"] == ("tenant", "huntress_organization_id")
    assert have["billing_api_calls"]["pk"] == ("api", "account", "started_epoch")
    tables = set(sa.inspect(engine).get_table_names())
    assert migrations.VERSION_TABLE in tables and "alembic_version" not in tables


def test_the_baseline_is_exactly_what_the_code_before_alembic_made(db_url: str, other_url: str) -> None:
    """Revision 0001 on an empty database builds the very tables, columns, keys, indexes and checks
    that 0.1.0's create path built."""
    made_by_old_code, made_by_0001 = store.make_engine(db_url), store.make_engine(other_url)
    pre_alembic.create(made_by_old_code)
    upgrade_to(made_by_0001, migrations.BASELINE)
    assert revision(made_by_0001) == migrations.BASELINE
    assert shape(made_by_0001) == shape(made_by_old_code)
    made_by_old_code.dispose()
    made_by_0001.dispose()


def test_a_database_made_before_alembic_is_upgraded_in_place_with_every_row(old: Any, other_url: str) -> None:
    eng, rows = old
    assert revision(eng) is None
    store.ensure_schema(eng)
    assert revision(eng) == migrations.HEAD

    for table, written in rows.items():
        with eng.connect() as conn:
            kept = [dict(r._mapping) for r in conn.execute(sa.select(schema.metadata.tables[table]))]
        as_written = sorted(canonical({k: r[k] for k in written[0]}) for r in kept)
        assert as_written == sorted(map(canonical, written)), table
        if table in TENANT_TABLES:
            assert {r["tenant"] for r in kept} == {"default"}, table
    assert all(r["amount_at_stake"] is None for r in store.list_quarantine(eng, tenant="default"))
    assert [
        (c["unit_price"], c["monthly_amount_delta"]) for c in store.list_changes(eng, tenant="default")
    ] == [(None, None)]

    # Upgraded is the same as new.
    fresh = store.make_engine(other_url)
    store.ensure_schema(fresh)
    assert shape(eng) == shape(fresh)
    fresh.dispose()

    # The store works on it: keys per tenant, the open-row index, the new tables.
    assert store.set_org_map(eng, 1, 300, None, "Dan", user_id="8", tenant="default")["cw_company_id"] == 300
    assert [
        (m["huntress_organization_id"], m["tenant"]) for m in store.list_org_map(eng, tenant="default")
    ] == [
        (1, "default"),
        (2, "default"),
    ]
    row = {"sync_key": "company:250:edr", "reason_code": "change_exceeds_limit", "detail": "again"}
    assert store.upsert_quarantine(eng, "manual__2", pre_alembic.DAY, [row], tenant="default") == 1
    assert len(store.list_quarantine(eng, tenant="default")) == 2  # the open row refreshed, not doubled
    store.add_override(eng, cw_company_id=250, product="edr", rule="exclude", user="Dan", tenant="default")
    assert len(store.list_overrides(eng, tenant="default")) == 1

    # Runs per tenant (0006): another tenant's DAG has the same run ids, and its rows stay its own.
    old_run = "scheduled__2026-11-01"
    staged = store.read_frame(eng, old_run, "organizations", tenant="default")
    assert staged["organization_id"].tolist() == [
        r["organization_id"] for r in rows["billing_stg_organizations"]
    ]
    store.start_run(eng, old_run, pre_alembic.DAY, None, "push", {}, tenant="north")
    store.write_frame(eng, old_run, "organizations", staged.head(1), tenant="north")
    store.record_changes(
        eng,
        old_run,
        pre_alembic.DAY,
        [{"sync_key": "company:250:edr", "action": "unchanged"}],
        tenant="north",
    )
    assert store.get_run(eng, old_run, tenant="default")["tenant"] == "default"
    assert store.get_run(eng, old_run, tenant="north")["tenant"] == "north"
    assert len(store.read_frame(eng, old_run, "organizations", tenant="default")) == len(staged)
    assert len(store.read_frame(eng, old_run, "organizations", tenant="north")) == 1
    assert store.ledger_count(eng, old_run, tenant="default") == len(rows["billing_changes"])
    assert store.ledger_count(eng, old_run, tenant="north") == 1

    # The shared rate-limit window (0007): the account's recent calls are kept.
    calls = store.record_api_calls(eng, "huntress", "huntress_default", [99.5], within_s=60, now=100)
    assert calls == [99.5]


def test_a_database_older_than_the_baseline_is_caught_up_first(db_url: str) -> None:
    """0.1.0 before the audit ids and staging's account_id, and without billing_runs at all."""
    eng = store.make_engine(db_url)
    older = sa.MetaData()
    for table in pre_alembic.metadata.sorted_tables:
        if table.name == "billing_runs":
            continue
        drop = {"resolved_by_id", "created_by_id", "account_id"}
        sa.Table(
            table.name,
            older,
            *(
                sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable, autoincrement=False)
                for c in table.columns
                if c.name not in drop
            ),
        )
    older.create_all(eng)
    store.ensure_schema(eng)
    assert revision(eng) == migrations.HEAD
    have = shape(eng)
    assert "resolved_by_id" in [c[0] for c in have["billing_quarantine"]["columns"]]
    assert "account_id" in [c[0] for c in have["billing_stg_organizations"]["columns"]]
    # billing_runs was created at the baseline, so revision 0006 added its tenant column after its
    # own, and revision 0009 its scope after that.
    assert [c["name"] for c in sa.inspect(eng).get_columns("billing_runs")][-2:] == ["tenant", "scope"]
    eng.dispose()


def test_ensure_schema_twice_is_a_no_op(old: Any, db_url: str) -> None:
    eng, _ = old
    store.ensure_schema(eng)
    before = shape(eng)
    statements: list[str] = []
    other = store.make_engine(db_url)  # a new engine: ensure_schema is not skipped as already done
    sa.event.listen(other, "before_cursor_execute", lambda *a: statements.append(a[2]))
    store.ensure_schema(other)
    assert shape(eng) == before and revision(eng) == migrations.HEAD
    changing = [s for s in statements if s.split(None, 1)[0].upper() in ("CREATE", "ALTER", "DROP", "INSERT")]
    assert changing == []
    # At head it reads the version table and looks at nothing else.
    assert [s for s in statements if "billing_" in s and migrations.VERSION_TABLE not in s] == []
    other.dispose()


def test_a_new_database_is_built_at_head_exactly_as_every_revision_builds_it(
    engine: sa.Engine, other_url: str
) -> None:
    store.ensure_schema(engine)
    replayed = store.make_engine(other_url)
    replay_every_revision(replayed)
    assert revision(engine) == revision(replayed) == migrations.HEAD
    assert canonical(shape(engine)) == canonical(shape(replayed))
    assert any("billing_decisions" in t[1] for t in shape(replayed)["(triggers)"])  # compared, not absent
    assert version_table(engine) == version_table(replayed)
    replayed.dispose()


def test_the_newest_revision_is_what_schema_py_declares(engine: sa.Engine) -> None:
    replay_every_revision(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_name": migrations.include_name, "compare_type": True}
        )
        diff = compare_metadata(context, schema.metadata)
    assert diff == []


def test_upgrades_of_an_old_database_race_safely(old: Any, db_url: str) -> None:
    engines = [store.make_engine(db_url) for _ in range(3)]
    barrier, errors = threading.Barrier(len(engines)), []

    def migrate(eng: sa.Engine) -> None:
        barrier.wait()
        try:
            store.ensure_schema(eng)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert revision(engines[0]) == migrations.HEAD
    assert len(store.list_org_map(engines[0], tenant="default")) == 2
    for e in engines:
        e.dispose()


def test_a_database_beside_airflows_keeps_airflows_version_table(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)"))
        conn.execute(sa.text("INSERT INTO alembic_version VALUES ('29ce7909c52b')"))
    store.ensure_schema(engine)
    assert revision(engine) == migrations.HEAD
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() == [
            "29ce7909c52b"
        ]


def test_a_database_of_a_newer_version_is_refused(engine: sa.Engine, db_url: str) -> None:
    store.ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE billing_alembic_version SET version_num = '0099'"))
    newer = store.make_engine(db_url)
    with pytest.raises(store.SchemaVersionError, match="'0099'"):
        store.ensure_schema(newer)
    newer.dispose()


def test_org_map_is_keyed_per_tenant(engine: sa.Engine) -> None:
    store.set_org_map(engine, 7, 10, None, "Jane", tenant="default")
    store.set_org_map(engine, 7, 20, "north's", "Jane", tenant="north")
    assert [m["cw_company_id"] for m in store.list_org_map(engine, tenant="default")] == [10]
    assert [m["cw_company_id"] for m in store.list_org_map(engine, tenant="north")] == [20]
    assert store.delete_org_map(engine, 7, tenant="north")
    assert [m["cw_company_id"] for m in store.list_org_map(engine, tenant="default")] == [10]
    with pytest.raises(ValueError, match="tenant"):
        store.list_org_map(engine, tenant="North Site")


def test_money_columns_keep_decimals(engine: sa.Engine) -> None:
    store.record_changes(
        engine, "r1", "2026-11-01", [{"sync_key": "company:1:edr", "action": "updated"}], tenant="default"
    )
    with engine.begin() as conn:
        conn.execute(
            store.changes.update().values(unit_price=Decimal("4.75"), monthly_amount_delta=Decimal("-23.75"))
        )
    [row] = store.list_changes(engine, tenant="default")
    assert (row["unit_price"], row["monthly_amount_delta"], row["tenant"]) == (
        Decimal("4.75"),
        Decimal("-23.75"),
        "default",
    )


@pytest.mark.parametrize(
    ("table", "values"),
    [
        ("billing_approvals", {"kind": "delete_addition"}),
        ("billing_approvals", {"status": "maybe"}),
        ("billing_overrides", {"rule": "maximum"}),
    ],
)
def test_the_database_refuses_values_outside_the_enumerations(
    engine: sa.Engine, table: str, values: dict[str, str]
) -> None:
    store.ensure_schema(engine)
    base = {
        "billing_approvals": {
            "billing_date": pre_alembic.DAY,
            "sync_key": "company:1:edr",
            "cw_company_id": 1,
            "product": "edr",
            "kind": "change",
            "to_quantity": 5,
            "approved_by": "Jane",
            "approved_at": pre_alembic.NOW,
        },
        "billing_overrides": {
            "cw_company_id": 1,
            "product": "edr",
            "rule": "fixed",
            "quantity": 5,
            "created_by": "Jane",
            "created_at": pre_alembic.NOW,
        },
    }[table]
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(schema.metadata.tables[table].insert().values(**{**base, **values}))
    with engine.begin() as conn:  # the same row with valid values goes in, with the defaults
        conn.execute(schema.metadata.tables[table].insert().values(**base))
