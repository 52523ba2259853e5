"""What a person approved, applied by the run: release, withdraw, close by what the push did.

Pending approvals of the billing date (docs/contract.md §3, §4) are released where reconcile
computed exactly their numbers, withdrawn when revoked since, and closed by what the push did
(applied, or stale when ConnectWise no longer holds what was approved). The matching itself is
pure: reconcile/approvals.py.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import replace
from datetime import date

import pandas as pd
from sqlalchemy.engine import Engine

from . import reconcile, store
from .config import load_settings
from .push import PushResult
from .rows import OutcomeRecord
from .runref import InvoicedRunRef

log = logging.getLogger(__name__)


def apply_approvals(
    eng: Engine, ref: InvoicedRunRef, outcomes: pd.DataFrame, within: Collection[str] | None = None
) -> pd.DataFrame:
    """Release the keys a person approved exactly this run's numbers for (reconcile.apply_approvals):
    the pending approvals of the run's billing date, no other. In a push run the ones that no longer
    match become `stale`; a dry run or a report-only run leaves every approval as it is.

    `within` (an apply, billing_sync.apply): only approvals of these keys; the run read nothing of
    the others, so it cannot judge them stale."""
    billing_date = date.fromisoformat(ref["billing_date"])
    pending = store.list_approvals(
        eng, tenant=ref["tenant"], billing_date=billing_date, status="pending", limit=None
    )
    if within is not None:
        pending = [a for a in pending if a["sync_key"] in within]
    if not pending:
        return outcomes
    agreements = store.read_frame(eng, ref["run_id"], "agreements", tenant=ref["tenant"])
    types = load_settings(ref["settings"]).agreement_types
    out, stale = reconcile.apply_approvals(outcomes, pending, agreements, billing_date, types)
    if ref["mode"] == "push":
        for approval_id in stale:
            _close_approval(eng, approval_id, "stale", tenant=ref["tenant"])
    log.info(
        "approvals of %s: %d pending, %d applied to this run's keys, %d stale%s",
        billing_date,
        len(pending),
        len(pending) - len(stale),
        len(stale),
        "" if ref["mode"] == "push" else " (left pending: this run writes nothing)",
    )
    return out


def approvals_in_force(
    eng: Engine, run_id: str, changes: list[OutcomeRecord], *, tenant: str
) -> tuple[list[OutcomeRecord], list[tuple[OutcomeRecord, PushResult]]]:
    """(changes to push, approved ones withdrawn since reconcile with the result to record).

    An approval revoked (or gone stale) after the run's reconcile is not applied: its key stays held.
    One this very run already marked applied is pushed again (a retried task finishing its record:
    the push finds ConnectWise already holds it and writes nothing).
    """
    ready: list[OutcomeRecord] = []
    withdrawn: list[tuple[OutcomeRecord, PushResult]] = []
    for change in changes:
        approval_id = change.get("approval_id")
        approval = None if approval_id is None else store.get_approval(eng, int(approval_id), tenant=tenant)
        status = None if approval is None else approval["status"]
        if (
            approval_id is None
            or status == "pending"
            or (status == "applied" and approval is not None and approval["applied_run_id"] == run_id)
        ):
            ready.append(change)
            continue
        detail = f"approval {approval_id} is {status or 'gone'}: not applied, nothing written"
        withdrawn.append((change, PushResult(change["sync_key"], "failed", _held(change), detail, None)))
    return ready, withdrawn


def settle_approval(
    eng: Engine, run_id: str, change: OutcomeRecord, result: PushResult, *, tenant: str
) -> PushResult:
    """Close the approval of an approved change by what the push did: written → `applied` (this run,
    now); ConnectWise no longer holding what was approved (`changed_since_read`) → `stale`, and the
    key stays held under its reason. Any other failure leaves it pending for the next run."""
    approval_id = change.get("approval_id")
    if approval_id is None:
        return result
    if result.action in ("updated", "created"):
        _close_approval(eng, int(approval_id), "applied", tenant=tenant, run_id=run_id)
    elif result.reason_code == "changed_since_read":
        _close_approval(eng, int(approval_id), "stale", tenant=tenant)
        detail = f"approval {approval_id} is stale, so the key stays held: {result.detail}"
        return replace(result, reason_code=_held(change), detail=detail)
    return result


def resolver(eng: Engine, change: OutcomeRecord, *, tenant: str) -> str | None:
    """Who resolved the held row of an approved change that was written, as a person reads it:
    "approval #1 (admin)", not the run id. None when no approval decided the change."""
    approval_id = change.get("approval_id")
    if approval_id is None:
        return None
    approval = store.get_approval(eng, int(approval_id), tenant=tenant)
    who = approval.get("approved_by") if approval else None
    return f"approval #{int(approval_id)}" + (f" ({who})" if who else "")


def _held(change: OutcomeRecord) -> str:
    """The reason an approved key is held for when its approval does not apply."""
    return reconcile.HELD_REASON["create_addition" if change.get("outcome") == "create" else "change"]


def _close_approval(
    eng: Engine, approval_id: int, status: str, *, tenant: str, run_id: str | None = None
) -> None:
    try:
        store.set_approval_status(eng, approval_id, status, tenant=tenant, run_id=run_id)
    except (store.ApprovalConflict, store.ApprovalNotFound) as exc:
        # Applied by this run already (a retry), or revoked by a person meanwhile: logged, kept.
        log.warning("approval %s not marked %s: %s", approval_id, status, exc)
