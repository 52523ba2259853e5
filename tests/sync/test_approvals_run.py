"""Approvals applied by runs, end to end without a scheduler (issue 11 §1, §4; docs/contract.md §3, §4):
the steps of a run (tests/proof/helpers.run_steps) against the ConnectWise and Huntress sandbox.

- a held change that a person approved is pushed once by the next run, through the normal push
  (re-read first); the ledger names the approval; the approval is applied; the row resolves;
- an edit in ConnectWise between the approval and the run makes it stale: nothing written, held;
- an approved new addition is created once (POST, contract §5), `created` in the ledger; a second
  run creates nothing; an answer lost after the POST is settled by reading, never by a second POST;
- nothing is created without an approval; a dry run applies nothing and leaves approvals pending.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from billing_sync import store
from tests.helpers.approvals_month import (
    DAY,
    HELD,
    HELD_ADDITION,
    HELD_AGREEMENT,
    MISSING,
    NEW_AGREEMENT,
    SMALL,
    VARIABLE,
    approve_change,
    approve_creation,
    held_row,
    ledger,
    scenario,
)
from tests.helpers.sandbox_setup import use_connections
from tests.proof.helpers import admin, cw_api, run_steps, served
from tests.proof.proxy import CorruptingProxy, Rule


@pytest.fixture
def sb(sandbox_factory, monkeypatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(tmp_path / "reports"))
    sandbox = sandbox_factory(scenario())
    use_connections(monkeypatch, sandbox)
    return sandbox


def run(eng: Any, run_id: str, day: str = DAY, **params: Any) -> Any:
    done = run_steps(eng, run_id, day, variable=VARIABLE, params=params)
    assert done.error is None, done.describe()
    return done


def quantities(sb: Any) -> dict[int, Any]:
    return {a["id"]: a["quantity"] for a in admin(sb.connectwise_url, "state")["additions"]}


def additions_of(sb: Any, agreement_id: int) -> list[dict[str, Any]]:
    return [a for a in admin(sb.connectwise_url, "state")["additions"] if a["agreementId"] == agreement_id]


# -- §1 a held change ---------------------------------------------------------------------------------
def test_an_approved_held_change_is_pushed_once_and_named_in_the_ledger(sb, eng) -> None:
    first = run(eng, "r1")
    assert quantities(sb)[HELD_ADDITION] == 40, "held: the guard stops 40 → 5"
    row = held_row(eng, HELD, "change_exceeds_limit")
    assert first.result["counts"]["quarantined"] == 2  # the held change and the missing addition

    approval = approve_change(eng)
    second = run(eng, "r2")

    assert quantities(sb)[HELD_ADDITION] == 5
    trail = [e for e in admin(sb.connectwise_url, "state")["audit_trail"] if e["id"] == HELD_ADDITION]
    assert [e["text"] for e in trail] == ["Quantity changed from 40 to 5"], "written exactly once"
    entry = ledger(eng, "r2")[HELD]
    assert (entry["action"], entry["approval_id"]) == ("updated", approval["id"])
    assert (entry["previous_quantity"], entry["new_quantity"]) == (40, 5)
    after = store.get_approval(eng, approval["id"], tenant="default")
    assert (after["status"], after["applied_run_id"]) == ("applied", "r2") and after["applied_at"]
    resolved = store.get_quarantine(eng, row["id"], tenant="default")
    # A person reads who resolved it as the approval and its approver; the id keeps the run (issue 20 §3).
    who = f"approval #{approval['id']} ({approval['approved_by']})"
    assert (resolved["status"], resolved["resolved_by"], resolved["resolved_by_id"]) == (
        "resolved",
        who,
        "sync:r2",
    )
    counts = second.result["counts"]
    assert counts["updated"] == 1 and counts["change_exceeds_limit"] == 0, counts
    assert served(sb.connectwise_url, "PATCH") == 2, "the small change in r1, the approved one in r2"

    third = run(eng, "r3")
    assert ledger(eng, "r3")[HELD]["action"] == "unchanged" and ledger(eng, "r3")[HELD]["approval_id"] is None
    assert third.result["counts"]["updated"] == 0
    assert served(sb.connectwise_url, "PATCH") == 2, "nothing written twice"


def test_a_held_change_an_override_decides_is_approved_for_the_overrides_quantity(sb, eng) -> None:
    """A `minimum 10` on Beta's EDR: the run aims for 10, not Huntress's 5; 40 → 10 still trips the
    guard. What the desk offers (the held row's proposal) is 40 → 10, and the next run pushes it,
    naming both the approval and the override."""
    from billing_sync import reconcile

    rule = store.add_override(
        eng, cw_company_id=251, product="edr", rule="minimum", quantity=10, user="Dan", tenant="default"
    )
    run(eng, "r1")
    assert quantities(sb)[HELD_ADDITION] == 40
    offered = reconcile.proposal(
        held_row(eng, HELD, "change_exceeds_limit")["payload"], "change_exceeds_limit"
    )
    assert offered is not None and (offered["from_quantity"], offered["to_quantity"]) == (40, 10)
    approval = approve_change(eng, to_quantity=offered["to_quantity"])
    run(eng, "r2")
    assert quantities(sb)[HELD_ADDITION] == 10
    entry = ledger(eng, "r2")[HELD]
    assert (entry["action"], entry["new_quantity"]) == ("updated", 10)
    assert (entry["approval_id"], entry["override_id"]) == (approval["id"], rule["id"])
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "applied"


def test_an_approval_made_stale_by_an_edit_in_connectwise_writes_nothing(sb, eng) -> None:
    run(eng, "r1")
    approval = approve_change(eng)
    with cw_api(sb.scenario, sb.connectwise_url) as cw:  # someone edits the addition meanwhile
        path = f"finance/agreements/{HELD_AGREEMENT}/additions/{HELD_ADDITION}"
        cw.patch(path, json=[{"op": "replace", "path": "quantity", "value": 41}]).raise_for_status()

    done = run(eng, "r2")

    assert quantities(sb)[HELD_ADDITION] == 41, "the approval was for 40 → 5, never for 41"
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "stale"
    row = held_row(eng, HELD, "change_exceeds_limit")
    assert row["run_id"] == "r2", "still held, refreshed by the run"
    assert HELD not in ledger(eng, "r2") or ledger(eng, "r2")[HELD]["action"] != "updated"
    assert done.result["counts"]["change_exceeds_limit"] == 1


def test_an_edit_between_the_read_and_the_write_makes_the_approval_stale_and_keeps_the_row_held(
    sb, eng
) -> None:
    run(eng, "r1")
    approval = approve_change(eng)

    def edit(_ref: Any) -> None:
        with cw_api(sb.scenario, sb.connectwise_url) as cw:
            path = f"finance/agreements/{HELD_AGREEMENT}/additions/{HELD_ADDITION}"
            cw.patch(path, json=[{"op": "replace", "path": "quantity", "value": 39}]).raise_for_status()

    done = run_steps(eng, "r2", DAY, variable=VARIABLE, before={"push": edit})
    assert done.error is None, done.describe()

    assert quantities(sb)[HELD_ADDITION] == 39, "the concurrent edit is never overwritten"
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "stale"
    entry = ledger(eng, "r2")[HELD]
    assert (entry["action"], entry["approval_id"]) == ("failed", approval["id"])
    row = held_row(eng, HELD, "change_exceeds_limit")
    assert f"approval {approval['id']} is stale" in row["detail"] and "39" in row["detail"]
    assert not store.list_quarantine(
        eng, status="open", sync_key=HELD, reason_code="changed_since_read", tenant="default"
    )
    counts = done.result["counts"]
    assert (counts["change_exceeds_limit"], counts["changed_since_read"], counts["updated"]) == (1, 0, 0)


def test_an_approval_never_carries_over_to_other_numbers_or_another_billing_date(sb, eng) -> None:
    run(eng, "r1")
    other_numbers = approve_change(eng, to_quantity=6)  # Huntress counts 5
    run(eng, "r2")
    assert store.get_approval(eng, other_numbers["id"], tenant="default")["status"] == "stale"
    assert quantities(sb)[HELD_ADDITION] == 40

    other_date = approve_change(eng, day="2026-10-01")
    run(eng, "r3")
    assert store.get_approval(eng, other_date["id"], tenant="default")["status"] == "pending", (
        "not this run's date"
    )
    assert quantities(sb)[HELD_ADDITION] == 40
    held_row(eng, HELD, "change_exceeds_limit")


def test_a_dry_run_applies_nothing_and_leaves_approvals_pending(sb, eng) -> None:
    run(eng, "r1")
    change, creation = approve_change(eng), approve_creation(eng)
    stale = approve_change(eng, sync_key=SMALL, cw_company_id=250, addition_id=501, from_quantity=1)

    done = run(eng, "r2", dry_run=True)

    assert quantities(sb)[HELD_ADDITION] == 40 and len(additions_of(sb, NEW_AGREEMENT)) == 1
    statuses = {
        store.get_approval(eng, a["id"], tenant="default")["status"] for a in (change, creation, stale)
    }
    assert statuses == {"pending"}, "a dry run marks nothing stale or applied"
    entries = ledger(eng, "r2")
    assert (entries[HELD]["action"], entries[HELD]["approval_id"]) == ("planned", change["id"])
    assert (entries[MISSING]["action"], entries[MISSING]["approval_id"]) == ("planned", creation["id"])
    assert done.result["counts"]["planned"] == 2, "the approved change and the approved addition"


def test_a_revoked_approval_is_not_applied(sb, eng) -> None:
    run(eng, "r1")
    approval = approve_change(eng)

    def revoke(_ref: Any) -> None:  # after reconcile released the key, before the push
        store.set_approval_status(eng, approval["id"], "revoked", tenant="default")

    done = run_steps(eng, "r2", DAY, variable=VARIABLE, before={"push": revoke})
    assert done.error is None, done.describe()
    assert quantities(sb)[HELD_ADDITION] == 40
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "revoked"
    assert "revoked" in held_row(eng, HELD, "change_exceeds_limit")["detail"]
    assert done.result["counts"]["change_exceeds_limit"] == 1


# -- §4 a missing addition ------------------------------------------------------------------------------
def test_nothing_is_created_without_an_approval(sb, eng) -> None:
    run(eng, "r1")
    run(eng, "r2")
    assert served(sb.connectwise_url, "POST") == 0
    assert len(additions_of(sb, NEW_AGREEMENT)) == 1
    held_row(eng, MISSING, "no_live_addition")


def test_an_approved_addition_is_created_once(sb, eng) -> None:
    run(eng, "r1")
    row = held_row(eng, MISSING, "no_live_addition")
    approval = approve_creation(eng)

    done = run(eng, "r2")

    new = [a for a in additions_of(sb, NEW_AGREEMENT) if a["product"]["identifier"] == "HUNTRESS-EDR"]
    assert len(new) == 1
    assert (new[0]["quantity"], new[0]["effectiveDate"], new[0]["billCustomer"]) == (
        12,
        f"{DAY}T00:00:00Z",
        "Billable",
    )
    entry = ledger(eng, "r2")[MISSING]
    assert (entry["action"], entry["approval_id"], entry["addition_id"]) == (
        "created",
        approval["id"],
        new[0]["id"],
    )
    assert (entry["agreement_id"], entry["new_quantity"], entry["previous_quantity"]) == (
        NEW_AGREEMENT,
        12,
        None,
    )
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "applied"
    assert store.get_quarantine(eng, row["id"], tenant="default")["status"] == "resolved"
    counts = done.result["counts"]
    assert (counts["created"], counts["no_live_addition"]) == (1, 0), counts
    totals = done.result["checks"]["products"]["edr"]
    assert (totals["connectwise_before"], totals["connectwise_after"]) == (80, 92), "the new units count"

    again = run(eng, "r3")
    assert served(sb.connectwise_url, "POST") == 1, "never created twice"
    assert ledger(eng, "r3")[MISSING]["action"] == "unchanged"
    assert again.result["counts"]["created"] == 0


def test_a_lost_answer_after_the_post_is_settled_by_reading_not_by_a_second_post(
    sb, eng, monkeypatch
) -> None:
    proxy = CorruptingProxy(sb.connectwise_url).start()
    try:
        use_connections_via(monkeypatch, sb, proxy.url)
        run(eng, "r1")
        approval = approve_creation(eng)
        (rule,) = proxy.set(Rule("POST", r"/finance/agreements/\d+/additions$", "short_read"))

        run(eng, "r2")

        assert rule.hits == 1, "one POST, its answer cut off"
        assert served(sb.connectwise_url, "POST") == 1
        new = [a for a in additions_of(sb, NEW_AGREEMENT) if a["product"]["identifier"] == "HUNTRESS-EDR"]
        assert len(new) == 1
        entry = ledger(eng, "r2")[MISSING]
        assert (entry["action"], entry["addition_id"]) == ("created", new[0]["id"])
        assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "applied"

        proxy.set()
        run(eng, "r3")
        assert served(sb.connectwise_url, "POST") == 1
    finally:
        proxy.stop()


def test_a_create_without_an_answer_is_read_before_it_is_sent_again(sb, eng, monkeypatch) -> None:
    """503s on every POST (answered by a proxy: ConnectWise never sees them): each POST follows a read
    that found nothing, at most CREATE_ATTEMPTS of them, then push_rejected; the approval stays
    pending, and the next run creates the addition."""
    from billing_sync.push import CREATE_ATTEMPTS

    proxy = CorruptingProxy(sb.connectwise_url).start()
    try:
        use_connections_via(monkeypatch, sb, proxy.url)
        run(eng, "r1")
        approval = approve_creation(eng)
        (rule,) = proxy.set(Rule("POST", r"/finance/agreements/\d+/additions$", "status:503"))
        reads_before = served(sb.connectwise_url, "GET", "/additions")

        done = run(eng, "r2")

        assert rule.hits == CREATE_ATTEMPTS
        assert served(sb.connectwise_url, "GET", "/additions") - reads_before >= CREATE_ATTEMPTS + 1
        assert served(sb.connectwise_url, "POST") == 0
        assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "pending"
        assert ledger(eng, "r2")[MISSING]["action"] == "failed"
        assert held_row(eng, MISSING, "push_rejected")["detail"].startswith("no addition created after")
        assert done.result["counts"]["push_rejected"] == 1

        proxy.set()
        run(eng, "r3")
        assert ledger(eng, "r3")[MISSING]["action"] == "created"
        assert served(sb.connectwise_url, "POST") == 1
        assert store.get_approval(eng, approval["id"], tenant="default")["applied_run_id"] == "r3"
        assert not store.list_quarantine(eng, status="open", sync_key=MISSING, tenant="default")
    finally:
        proxy.stop()


def test_a_retried_push_finds_the_addition_it_made(sb, eng) -> None:
    """The push task killed after the POST, before it recorded anything: its retry reads the
    agreement's additions, finds the one it made, records `created` and sends nothing."""
    from billing_sync import steps
    from billing_sync.connectwise import ConnectWiseClient

    run(eng, "r1")
    approval = approve_creation(eng)
    first = run_steps(eng, "r2", DAY, variable=VARIABLE, stop_before="push")
    assert first.error is None, first.describe()
    ref = first.ref
    client = ConnectWiseClient.from_connection(codebase="v4_6_release/")
    client.create_addition(
        NEW_AGREEMENT,
        "HUNTRESS-EDR",
        12,
        store.get_approval(eng, approval["id"], tenant="default")["billing_date"],
    )

    steps.push_batch(eng, ref, 0, client)  # the retry
    steps.record_run(eng, ref)

    assert served(sb.connectwise_url, "POST") == 1
    entry = ledger(eng, "r2")[MISSING]
    assert entry["action"] == "created" and entry["approval_id"] == approval["id"]
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "applied"


def test_an_approval_for_an_agreement_the_company_no_longer_has_goes_stale(sb, eng) -> None:
    run(eng, "r1")
    approval = approve_creation(eng, agreement_id=1578)  # Acme's agreement, not Gamma's
    run(eng, "r2")
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "stale"
    assert served(sb.connectwise_url, "POST") == 0
    held_row(eng, MISSING, "no_live_addition")


def test_an_addition_made_by_hand_meanwhile_is_not_duplicated(sb, eng) -> None:
    run(eng, "r1")
    approval = approve_creation(eng)

    def add_by_hand(_ref: Any) -> None:  # after reconcile, before the push
        body = {"product": {"identifier": "HUNTRESS-EDR"}, "quantity": 10, "billCustomer": "Billable",
                "effectiveDate": "2026-10-15T00:00:00Z"}  # fmt: skip
        with cw_api(sb.scenario, sb.connectwise_url) as cw:
            cw.post(f"finance/agreements/{NEW_AGREEMENT}/additions", json=body).raise_for_status()

    done = run_steps(eng, "r2", DAY, variable=VARIABLE, before={"push": add_by_hand})
    assert done.error is None, done.describe()
    edr = [a for a in additions_of(sb, NEW_AGREEMENT) if a["product"]["identifier"] == "HUNTRESS-EDR"]
    assert [a["quantity"] for a in edr] == [10], "the sync created nothing beside it"
    assert store.get_approval(eng, approval["id"], tenant="default")["status"] == "stale"
    assert "stale" in held_row(eng, MISSING, "no_live_addition")["detail"]


def use_connections_via(monkeypatch, sb: Any, connectwise_url: str) -> None:
    """The sync's connections, ConnectWise reached through `connectwise_url` (a proxy)."""
    from billing_sandbox.connections import airflow_connections

    env = airflow_connections(
        sb.scenario, sb.huntress_url, connectwise_url, connectwise_extra={"max_retries": 3}
    )
    for key, value in env.items():
        monkeypatch.setenv(key, value)
