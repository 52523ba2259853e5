"""store.decisions: the decision history (`billing_decisions`), append-only (docs/contract.md §4).

Every decision path of the store appends exactly one entry, with who, the subject and the subject
before and after, in the decision's own transaction; the database refuses UPDATE and DELETE of an
entry whichever way the table was built (new at head, or by replaying every revision).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from billing_sync import store
from billing_sync.store import migrations

DAY = "2026-11-01"
T = "north"  # not the default tenant: nothing may fall back to it
PACKAGE = Path(store.__file__).resolve().parents[1]
# /work/shared/CONTRACTS.md §4 `billing_decisions`, word for word, and the extensions docs/contract.md names.
CONTRACT_COLUMNS = "id tenant at actor_id actor_name kind subject subject_id before after note".split()
EXTENSION_COLUMNS = (
    "quarantine_id sync_key huntress_organization_id cw_company_id product approval_id override_id".split()
)
CONTRACT_KINDS = (
    "dismiss|resolve|reopen|map|unmap|approve|revoke|create|override_add|override_end|settings|apply".split(
        "|"
    )
)
CONTRACT_SUBJECTS = "quarantine|mapping|approval|override|settings|run".split("|")


def build(engine: sa.Engine, how: str) -> None:
    if how == "at_head":
        store.ensure_schema(engine)
        return
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(migrations.config(conn), "head")


def entries(engine: sa.Engine, tenant: str = T) -> list[dict[str, Any]]:
    return store.list_decisions(engine, tenant=tenant, limit=None)


def one_new(engine: sa.Engine, seen: list[dict[str, Any]]) -> dict[str, Any]:
    """The single entry added since `seen` (fails when there are none or several)."""
    known = {e["id"] for e in seen}
    new = [e for e in entries(engine) if e["id"] not in known]
    assert len(new) == 1, new
    return new[0]


def quarantine_row(engine: sa.Engine, key: str = "company:250:edr") -> dict[str, Any]:
    row = {"sync_key": key, "reason_code": "change_exceeds_limit", "cw_company_id": 250, "product": "edr"}
    store.upsert_quarantine(engine, "scheduled__1", DAY, [row], tenant=T)
    [found] = store.list_quarantine(engine, sync_key=key, tenant=T)
    return found


@pytest.mark.parametrize("how", ["at_head", "replayed"])
def test_the_table_is_the_contracts_with_its_named_extensions(engine: sa.Engine, how: str) -> None:
    build(engine, how)
    insp = sa.inspect(engine)
    columns = {c["name"]: c for c in insp.get_columns("billing_decisions")}
    assert sorted(columns) == sorted(CONTRACT_COLUMNS + EXTENSION_COLUMNS)
    # Every entry says whose, when, what kind and about what; who may be unnamed (a script).
    required = {name for name, c in columns.items() if not c["nullable"]}
    assert required == {"id", "tenant", "at", "kind", "subject", "subject_id"}
    checks = {c["name"]: c["sqltext"] for c in insp.get_check_constraints("billing_decisions")}
    listed = {name: set(re.findall(r"'([a-z_]+)'", text)) for name, text in checks.items()}
    assert listed == {
        "ck_billing_decisions_kind": set(CONTRACT_KINDS),
        "ck_billing_decisions_subject": set(CONTRACT_SUBJECTS),
    }
    assert (list(store.DECISION_KINDS), list(store.DECISION_SUBJECTS)) == (CONTRACT_KINDS, CONTRACT_SUBJECTS)
    # The database enforces them: `apply` on a run (issue 20, recorded by nobody yet) is accepted, a
    # kind or subject the contract does not list is refused.
    entry = {"tenant": T, "at": "2026-11-01 10:00:00", "actor_name": "Jane", "kind": "apply"}
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO billing_decisions (tenant, at, actor_name, kind, subject, subject_id) "
                "VALUES (:tenant, :at, :actor_name, :kind, 'run', 'manual__1')"
            ),
            entry,
        )
    # Today's names before the contract's: override_added, settings_changed; an organization subject.
    for kind, subject in (("override_added", "override"), ("settings_changed", "settings"), ("map", "org")):
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO billing_decisions (tenant, at, actor_name, kind, subject, subject_id) "
                    "VALUES (:tenant, :at, :actor_name, :kind, :subject, '1')"
                ),
                {**entry, "kind": kind, "subject": subject},
            )
    [e] = entries(engine)
    assert (e["kind"], e["subject"], e["subject_id"], e["actor_name"], e["at"].tzinfo is not None) == (
        "apply",
        "run",
        "manual__1",
        "Jane",
        True,
    )


@pytest.mark.parametrize("how", ["at_head", "replayed"])
def test_the_database_refuses_to_update_or_delete_an_entry(engine: sa.Engine, how: str) -> None:
    build(engine, how)
    store.set_org_map(engine, 7, 250, "first", "Jane", user_id="42", tenant=T)
    [entry] = entries(engine)
    d = store.decision_history
    attempts = [
        d.update().where(d.c.id == entry["id"]).values(note="rewritten", actor_name="Mallory"),
        d.update().values(after=None),
        d.delete().where(d.c.id == entry["id"]),
        d.delete(),
    ]
    if engine.dialect.name == "postgresql":
        attempts.append(sa.text("TRUNCATE billing_decisions"))
    for statement in attempts:
        with pytest.raises(sa.exc.IntegrityError, match="append-only"), engine.begin() as conn:
            conn.execute(statement)
    assert entries(engine) == [entry]


def test_every_decision_path_appends_exactly_one_entry_with_before_and_after(engine: sa.Engine) -> None:
    # Quarantine: dismiss, reopen (the dismissal survives in the history), resolve.
    row = quarantine_row(engine)
    seen = entries(engine)
    store.set_quarantine_status(engine, row["id"], "dismissed", "Jane", "duplicate", tenant=T, user_id="42")
    e = one_new(engine, seen)
    assert (e["kind"], e["actor_name"], e["actor_id"], e["note"], e["tenant"]) == (
        "dismiss",
        "Jane",
        "42",
        "duplicate",
        T,
    )
    assert (e["quarantine_id"], e["sync_key"], e["cw_company_id"], e["product"]) == (
        row["id"],
        "company:250:edr",
        250,
        "edr",
    )
    assert e["before"]["status"] == "open" and e["before"]["resolved_by"] is None
    assert (e["after"]["status"], e["after"]["resolved_by"], e["after"]["note"]) == (
        "dismissed",
        "Jane",
        "duplicate",
    )
    assert e["at"].tzinfo is not None
    assert (e["subject"], e["subject_id"]) == ("quarantine", str(row["id"]))

    seen = entries(engine)
    store.set_quarantine_status(engine, row["id"], "open", "Bob", "not a duplicate", tenant=T, user_id="7")
    e = one_new(engine, seen)
    assert (e["kind"], e["actor_name"], e["note"]) == ("reopen", "Bob", "not a duplicate")
    assert (e["before"]["status"], e["before"]["resolved_by"], e["before"]["resolved_by_id"]) == (
        "dismissed",
        "Jane",
        "42",
    )
    assert (e["after"]["status"], e["after"]["resolved_by"]) == ("open", None)

    seen = entries(engine)
    store.set_quarantine_status(engine, row["id"], "resolved", "Carol", None, tenant=T, user_id="9")
    e = one_new(engine, seen)
    assert (e["kind"], e["before"]["status"], e["after"]["status"], e["after"]["resolved_by"]) == (
        "resolve",
        "open",
        "resolved",
        "Carol",
    )
    assert [x["kind"] for x in store.list_decisions(engine, tenant=T, quarantine_id=row["id"])] == [
        "resolve",
        "reopen",
        "dismiss",
    ]

    # Mapping: map, re-map (the earlier creator survives), unmap (the mapping survives).
    seen = entries(engine)
    store.set_org_map(engine, 7, 250, "first", "Jane", user_id="42", tenant=T)
    e = one_new(engine, seen)
    assert (e["kind"], e["huntress_organization_id"], e["cw_company_id"], e["before"]) == (
        "map",
        7,
        250,
        None,
    )
    assert (e["after"]["cw_company_id"], e["after"]["created_by"]) == (250, "Jane")
    assert (e["subject"], e["subject_id"]) == ("mapping", "7")  # the organization's id
    seen = entries(engine)
    store.set_org_map(engine, 7, 260, "moved", "Bob", user_id="7", tenant=T)
    e = one_new(engine, seen)
    assert (e["kind"], e["cw_company_id"], e["note"]) == ("map", 260, "moved")
    assert (e["before"]["cw_company_id"], e["before"]["created_by"], e["before"]["created_by_id"]) == (
        250,
        "Jane",
        "42",
    )
    assert (e["after"]["cw_company_id"], e["after"]["created_by"]) == (260, "Bob")
    seen = entries(engine)
    assert store.delete_org_map(engine, 7, tenant=T, user="Carol", user_id="9")
    e = one_new(engine, seen)
    assert (e["kind"], e["actor_name"], e["after"], e["cw_company_id"]) == ("unmap", "Carol", None, 260)
    assert (e["subject"], e["subject_id"]) == ("mapping", "7")
    assert (e["before"]["cw_company_id"], e["before"]["created_by"], e["before"]["note"]) == (
        260,
        "Bob",
        "moved",
    )
    seen = entries(engine)
    assert not store.delete_org_map(engine, 7, tenant=T, user="Carol")  # nothing to remove: no decision
    assert entries(engine) == seen

    # Approvals: approve (a change), create (a new addition), revoke; a run's applied is no person's.
    common = {"billing_date": DAY, "cw_company_id": 250, "product": "edr", "user": "Jane", "user_id": "42"}
    seen = entries(engine)
    change = store.add_approval(
        engine,
        **common,
        sync_key="company:250:edr",
        kind="change",
        addition_id=501,
        from_quantity=38,
        to_quantity=90,
        note="onboarding",
        tenant=T,
    )
    e = one_new(engine, seen)
    assert (e["kind"], e["approval_id"], e["before"], e["note"]) == (
        "approve",
        change["id"],
        None,
        "onboarding",
    )
    assert (e["after"]["from_quantity"], e["after"]["to_quantity"], e["after"]["status"]) == (
        38.0,
        90.0,
        "pending",
    )
    seen = entries(engine)
    create = store.add_approval(
        engine,
        **common,
        sync_key="company:250:sat",
        kind="create_addition",
        agreement_id=1578,
        to_quantity=5,
        tenant=T,
    )
    e = one_new(engine, seen)
    assert (e["kind"], e["approval_id"], e["sync_key"], e["after"]["agreement_id"]) == (
        "create",
        create["id"],
        "company:250:sat",
        1578,
    )
    seen = entries(engine)
    store.set_approval_status(
        engine,
        change["id"],
        "revoked",
        tenant=T,
        note="Revoked by Bob",
        user="Bob",
        user_id="7",
        reason="wrong",
    )
    e = one_new(engine, seen)
    assert (e["kind"], e["actor_name"], e["note"]) == ("revoke", "Bob", "wrong")
    assert (e["subject"], e["subject_id"]) == ("approval", str(change["id"]))
    assert (e["before"]["status"], e["after"]["status"], e["after"]["note"]) == (
        "pending",
        "revoked",
        "Revoked by Bob",
    )
    seen = entries(engine)
    store.set_approval_status(engine, create["id"], "applied", tenant=T, run_id="scheduled__2")
    assert entries(engine) == seen

    # Overrides: added, ended; ending an ended one decides nothing.
    seen = entries(engine)
    rule = store.add_override(
        engine,
        cw_company_id=250,
        product="edr",
        rule="minimum",
        quantity=10,
        note="contract",
        user="Jane",
        tenant=T,
    )
    e = one_new(engine, seen)
    assert (e["kind"], e["override_id"], e["before"], e["after"]["quantity"], e["note"]) == (
        "override_add",
        rule["id"],
        None,
        10.0,
        "contract",
    )
    seen = entries(engine)
    store.retire_override(engine, rule["id"], tenant=T, user="Bob", user_id="7")
    e = one_new(engine, seen)
    assert (e["kind"], e["actor_name"], e["before"]["active"], e["after"]["active"]) == (
        "override_end",
        "Bob",
        True,
        False,
    )
    assert (e["subject"], e["subject_id"], e["override_id"]) == ("override", str(rule["id"]), rule["id"])
    seen = entries(engine)
    store.retire_override(engine, rule["id"], tenant=T, user="Bob")
    assert entries(engine) == seen

    # Settings (the settings page records them, issue 21).
    seen = entries(engine)
    store.record_settings_change(
        engine,
        tenant=T,
        variable="huntress_cw_billing_config_north",
        user="Dan",
        user_id="3",
        before={"change_limit": 25},
        after={"change_limit": 40},
        note="Q4",
    )
    e = one_new(engine, seen)
    assert (e["kind"], e["before"], e["after"], e["note"]) == (
        "settings",
        {"change_limit": 25},
        {"change_limit": 40},
        "Q4",
    )
    assert (e["subject"], e["subject_id"]) == ("settings", "huntress_cw_billing_config_north")

    # Every kind but `apply` (the desk's Apply-now, issue 20: allowed, recorded by nothing yet).
    assert {x["kind"] for x in entries(engine)} == set(store.DECISION_KINDS) - {"apply"}
    assert {x["subject"] for x in entries(engine)} == set(store.DECISION_SUBJECTS) - {"run"}
    assert entries(engine, "default") == []  # another tenant's history has none of it


def test_a_decision_and_its_entry_commit_together_or_not_at_all(engine: sa.Engine) -> None:
    row = quarantine_row(engine)
    # A refused decision records nothing: reopening while a twin row is open.
    store.set_quarantine_status(engine, row["id"], "resolved", "Jane", "fixed", tenant=T)
    store.upsert_quarantine(
        engine,
        "scheduled__2",
        DAY,
        [{"sync_key": row["sync_key"], "reason_code": row["reason_code"]}],
        tenant=T,
    )
    [twin] = store.list_quarantine(engine, status="open", tenant=T)
    seen = entries(engine)
    with pytest.raises(ValueError, match="already open"):
        store.set_quarantine_status(engine, row["id"], "open", "Bob", None, tenant=T)
    assert entries(engine) == seen and twin["id"] != row["id"]

    # An entry the database refuses undoes its decision.
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_entries BEFORE INSERT ON billing_decisions "
                "BEGIN SELECT RAISE(ABORT, 'no entry today'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse_entries() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RAISE EXCEPTION 'no entry today' USING ERRCODE = 'check_violation'; END $$"
            )
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_entries BEFORE INSERT ON billing_decisions "
                "FOR EACH ROW EXECUTE FUNCTION refuse_entries()"
            )
    with pytest.raises(store.DecisionNotRecorded, match="no entry today"):
        store.set_quarantine_status(engine, twin["id"], "dismissed", "Jane", "dup", tenant=T)
    assert store.get_quarantine(engine, twin["id"], tenant=T)["status"] == "open"
    with pytest.raises(store.DecisionNotRecorded, match="no entry today"):
        store.set_org_map(engine, 7, 250, None, "Jane", tenant=T)
    assert store.list_org_map(engine, tenant=T) == []
    with pytest.raises(store.DecisionNotRecorded, match="no entry today"):
        store.add_override(engine, cw_company_id=250, product="edr", rule="exclude", user="Jane", tenant=T)
    assert store.list_overrides(engine, tenant=T, active=None) == []
    assert entries(engine) == seen


def test_a_companys_history_follows_an_organization_mapped_away_from_it(engine: sa.Engine) -> None:
    store.set_org_map(engine, 7, 250, None, "Jane", tenant=T)
    store.set_org_map(engine, 7, 260, None, "Bob", tenant=T)
    store.add_override(engine, cw_company_id=260, product="edr", rule="exclude", user="Bob", tenant=T)
    store.set_org_map(engine, 8, 270, None, "Bob", tenant=T)
    was_250 = store.list_decisions(engine, tenant=T, company_id=250)
    assert [(e["kind"], e["cw_company_id"]) for e in was_250] == [("map", 260), ("map", 250)]
    is_260 = store.list_decisions(engine, tenant=T, company_id=260)
    assert [(e["kind"], e["cw_company_id"]) for e in is_260] == [
        ("override_add", 260),
        ("map", 260),
        ("map", 250),
    ]
    assert [
        e["huntress_organization_id"] for e in store.list_decisions(engine, tenant=T, organization_id=8)
    ] == [8]
    assert store.list_decisions(engine, tenant="south", company_id=250) == []


def test_the_history_reads_in_batches_as_one_list(engine: sa.Engine) -> None:
    for org in range(1, 8):
        store.set_org_map(engine, org, 250, None, "Jane", tenant=T)
    whole = store.list_decisions(engine, tenant=T, limit=None)
    assert len(whole) == 7 and [e["id"] for e in whole] == sorted((e["id"] for e in whole), reverse=True)
    assert list(store.iter_decisions(engine, tenant=T, batch=3)) == whole
    assert list(store.iter_decisions(engine, tenant=T, company_id=250, batch=7)) == whole
    assert store.list_decisions(engine, tenant=T, limit=2, offset=2) == whole[2:4]


def test_bad_entries_are_refused(engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="tenant"):
        store.list_decisions(engine, tenant="North Site")
    with pytest.raises(ValueError, match="kind"):
        store.list_decisions(engine, tenant=T, kind="erase")
    with pytest.raises(ValueError, match="user"):
        store.record_settings_change(
            engine, tenant=T, variable="v", user=" ", user_id=None, before=None, after={}
        )
    with pytest.raises(ValueError, match="subject_id"):
        store.record_settings_change(
            engine, tenant=T, variable=" ", user="Dan", user_id=None, before=None, after={}
        )
    assert entries(engine) == []


def test_nothing_in_the_package_updates_or_deletes_an_entry() -> None:
    """The store offers append and read only; no module builds an UPDATE or DELETE of the table."""
    decisions = importlib.import_module("billing_sync.store.decisions")
    public = {n for n in vars(decisions) if not n.startswith("_") and callable(getattr(decisions, n))}
    ours = {n for n in public if getattr(getattr(decisions, n), "__module__", "") == decisions.__name__}
    assert ours == {
        "append_decision",
        "record_settings_change",
        "list_decisions",
        "iter_decisions",
        "DecisionNotRecorded",
    }
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("update", "delete"):
                target = node.value
                name = target.id if isinstance(target, ast.Name) else getattr(target, "attr", "")
                assert name != "decisions", f"{path}: decisions.{node.attr}"
