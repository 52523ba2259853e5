"""store/schema.py: tables made once, however many creators race; older databases upgraded in place."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from billing_sync import frames, store


def test_ensure_schema_twice_is_harmless(engine: sa.Engine) -> None:
    store.ensure_schema(engine)
    store.ensure_schema(engine)
    names = set(sa.inspect(engine).get_table_names())
    expected = {"billing_quarantine", "billing_changes", "billing_runs", "billing_org_map"}
    assert expected | {f"billing_stg_{n}" for n in frames.SCHEMAS} <= names


def test_ensure_schema_concurrently_from_several_engines(db_url: str) -> None:
    engines = [store.make_engine(db_url) for _ in range(3)]
    barrier, errors = threading.Barrier(len(engines)), []

    def create(eng: sa.Engine) -> None:
        barrier.wait()
        try:
            store.ensure_schema(eng)
        except Exception as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert store.ledger_count(engines[0], tenant="default") == 0
    for e in engines:
        e.dispose()


def test_staging_tables_of_an_older_version_gain_new_columns(db_url: str) -> None:
    """A billing database whose organizations staging table predates account_id is upgraded in place."""
    eng = store.make_engine(db_url)
    old = sa.MetaData()
    sa.Table(
        "billing_stg_organizations",
        old,
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("organization_id", sa.BigInteger),
        sa.Column("name", sa.Text),
        sa.Column("key", sa.Text),
        sa.Column(store.ROW_COLUMN, sa.Integer, primary_key=True, autoincrement=False),
    )
    old.create_all(eng)
    with eng.begin() as conn:
        conn.execute(
            sa.insert(old.tables["billing_stg_organizations"]).values(
                run_id="old", organization_id=1, name="A", key="a", **{store.ROW_COLUMN: 0}
            )
        )
    store.ensure_schema(eng)
    orgs = frames.organizations_frame([{"id": 2, "name": "B", "key": "b", "account_id": 7}])
    store.write_frame(eng, "new", "organizations", orgs, tenant="default")
    assert store.read_frame(eng, "new", "organizations", tenant="default")["account_id"].tolist() == [7]
    assert store.read_frame(eng, "old", "organizations", tenant="default")["account_id"].isna().all()
    eng.dispose()
