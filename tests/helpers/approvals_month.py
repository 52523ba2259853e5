"""The approvals month (issue 11 §1, §4): three companies of one invoice, one small change, one
held past the guard and one with usage but no addition, and the approvals a person makes on them.
Shared by the approval tests on the wire (tests/sync/test_approvals_run.py) and those about the
run's data and money, served in memory (test_approvals_money.py, test_report_decisions.py)."""

from __future__ import annotations

from typing import Any

from billing_sandbox.memory import MemorySources
from billing_sync import store
from tests.proof.helpers import StepsRun, run_steps

DAY = "2026-11-01"
VARIABLE = {"products": {"edr": "HUNTRESS-EDR"}}
SMALL, HELD, MISSING = "company:250:edr", "company:251:edr", "company:252:edr"
HELD_ADDITION, HELD_AGREEMENT, NEW_AGREEMENT = 502, 1579, 1580


def scenario() -> dict[str, Any]:
    """Three companies: one small change (38 → 40), one held change (40 → 5, past the guard), and one
    with usage but no EDR addition (12), whose only agreement carries other products."""
    agreement = {"type": "Managed Services", "agreementStatus": "Active", "cancelledFlag": False}
    start = "2025-01-01T00:00:00Z"
    return {
        "huntress": {
            "api_key": "hk_approvals",
            "api_secret": "hs_approvals",
            "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
            "organizations": [
                {"id": 101, "name": "Acme Corp", "key": "acme"},
                {"id": 102, "name": "Beta Dental", "key": "beta"},
                {"id": 103, "name": "Gamma Law", "key": "gamma"},
            ],
            "invoices": [
                {
                    "id": 5001,
                    "created_at": f"{DAY}T06:00:00Z",
                    "status": "paid",
                    "lines": [
                        {"organization_id": 101, "actual_usage": {"edr": 40}},
                        {"organization_id": 102, "actual_usage": {"edr": 5}},
                        {"organization_id": 103, "actual_usage": {"edr": 12}},
                    ],
                }
            ],
        },
        "connectwise": {
            "company_id": "demomsp",
            "public_key": "pub",
            "private_key": "priv_approvals",
            "client_id": "00000000-0000-0000-0000-000000000000",
            "companies": [
                {"id": 250, "identifier": "acme", "name": "Acme Corp"},
                {"id": 251, "identifier": "beta", "name": "Beta Dental"},
                {"id": 252, "identifier": "gamma", "name": "Gamma Law"},
            ],
            "catalog": [
                {"id": 752, "identifier": "HUNTRESS-EDR", "description": "Huntress Managed EDR", "price": 4.5},
                {"id": 753, "identifier": "BACKUP", "description": "Backup"},
            ],
            "agreements": [
                {**agreement, "id": 1578, "name": "Acme MSA", "company_id": 250, "startDate": start,
                 "additions": [{"id": 501, "product_id": 752, "quantity": 38, "effectiveDate": start}]},
                {**agreement, "id": HELD_AGREEMENT, "name": "Beta MSA", "company_id": 251, "startDate": start,
                 "additions": [{"id": HELD_ADDITION, "product_id": 752, "quantity": 40, "effectiveDate": start}]},
                {**agreement, "id": NEW_AGREEMENT, "name": "Gamma MSA", "company_id": 252, "startDate": start,
                 "additions": [{"id": 503, "product_id": 753, "quantity": 2, "effectiveDate": start}]},
            ],
        },
    }  # fmt: skip


def run_in_memory(sources: MemorySources, eng: Any, run_id: str, day: str = DAY, **params: Any) -> StepsRun:
    """A run of the steps on the month served in memory; it must finish."""
    done = run_steps(eng, run_id, day, variable=VARIABLE, params=params, sources=sources)
    assert done.error is None, done.describe()
    return done


def held_row(eng: Any, key: str, reason: str) -> dict[str, Any]:
    (row,) = store.list_quarantine(eng, status="open", sync_key=key, reason_code=reason, tenant="default")
    return row


def approve_change(eng: Any, day: str = DAY, **overrides: Any) -> dict[str, Any]:
    fields = dict(
        billing_date=day, sync_key=HELD, cw_company_id=251, product="edr", kind="change",
        addition_id=HELD_ADDITION, agreement_id=HELD_AGREEMENT, from_quantity=40, to_quantity=5,
        user="Alice Example", user_id="alice", note="customer left 35 seats",
    )  # fmt: skip
    return store.add_approval(eng, **{**fields, **overrides}, tenant="default")


def approve_creation(eng: Any, day: str = DAY, **overrides: Any) -> dict[str, Any]:
    fields = dict(
        billing_date=day, sync_key=MISSING, cw_company_id=252, product="edr", kind="create_addition",
        agreement_id=NEW_AGREEMENT, to_quantity=12, user="Bob Example", user_id="bob",
    )  # fmt: skip
    return store.add_approval(eng, **{**fields, **overrides}, tenant="default")


def ledger(eng: Any, run_id: str) -> dict[str, dict[str, Any]]:
    return {r["sync_key"]: r for r in store.changes_for_run(eng, run_id, tenant="default")}
