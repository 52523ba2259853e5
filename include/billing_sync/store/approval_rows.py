"""Approvals (`billing_approvals`): a person approves one held change, or a new addition.

Store functions only: recording, listing and closing approvals. Which run applies one, and when it
goes stale, is the sync's business (docs/contract.md §3, §4).
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .database import _reading, _writing
from .decisions import append_decision
from .records import ApprovalRow, NewApproval
from .schema import APPROVAL_KINDS, APPROVAL_STATUSES, approvals
from .schema import decisions as decision_history
from .values import (
    _as_date,
    _id,
    _now,
    _optional_id,
    _optional_quantity,
    _quantity,
    _row,
    _rows,
    _tenant_id,
    _text,
    _user,
)


class ApprovalNotFound(LookupError):
    """No approval has the given id."""


class ApprovalConflict(ValueError):
    """The tenant already has a pending approval for this billing date and sync key, or the approval
    is no longer pending."""


def add_approval(
    engine: Engine,
    *,
    billing_date: date | datetime | str,
    sync_key: str,
    cw_company_id: int,
    product: str,
    kind: str,
    to_quantity: float,
    user: str,
    user_id: str | None = None,
    from_quantity: float | None = None,
    addition_id: int | None = None,
    agreement_id: int | None = None,
    note: str | None = None,
    quarantine_id: int | None = None,
    tenant: str,
) -> ApprovalRow:
    """Record a pending approval; returns the row.

    `quarantine_id`: the held row it was approved from, named by its history entry (and by a later
    revocation's), so the row's history shows it.

    `change`: exactly this change of an existing addition, `addition_id` from `from_quantity` to
    `to_quantity`. `create_addition`: a new addition of `to_quantity` on `agreement_id` (no
    `addition_id` nor `from_quantity` yet). At most one pending approval per tenant, billing date
    and sync key (`ApprovalConflict`).
    """
    row: NewApproval = {
        "tenant": _tenant_id(tenant),
        "billing_date": _as_date(billing_date),
        "sync_key": _text(sync_key, "sync_key"),
        "cw_company_id": _id(cw_company_id, "cw_company_id"),
        "product": _text(product, "product"),
        "kind": kind,
        "addition_id": _optional_id(addition_id, "addition_id"),
        "agreement_id": _optional_id(agreement_id, "agreement_id"),
        "from_quantity": _optional_quantity(from_quantity, "from_quantity"),
        "to_quantity": _quantity(to_quantity, "to_quantity"),
        "status": "pending",
        "approved_by": _user(user),
        "approved_by_id": user_id,
        "approved_at": _now(),
        "note": note,
    }
    _check_kind(row)
    try:
        with _writing(engine) as conn:
            _refuse_second_pending(conn, row)
            new_id = conn.execute(approvals.insert().values(**row).returning(approvals.c.id)).scalar_one()
            added = _row(
                conn.execute(sa.select(approvals).where(approvals.c.id == new_id)).one(), ApprovalRow
            )
            kind_of = "approve" if kind == "change" else "create"
            _append(
                conn, kind_of, None, added, user, user_id, note, _optional_id(quarantine_id, "quarantine_id")
            )
            return added
    except sa.exc.IntegrityError as exc:  # a concurrent approval of the same key won the race
        raise ApprovalConflict(_pending_message(row)) from exc


def _check_kind(row: NewApproval) -> None:
    kind = row["kind"]
    if kind not in APPROVAL_KINDS:
        raise ValueError(f"kind must be one of {list(APPROVAL_KINDS)}, not {kind!r}")
    if kind == "change":
        if row["addition_id"] is None or row["from_quantity"] is None:
            raise ValueError("a change approval names its addition_id and from_quantity")
        if row["from_quantity"] == row["to_quantity"]:
            raise ValueError("a change approval changes the quantity: from_quantity equals to_quantity")
    elif row["addition_id"] is not None or row["from_quantity"] is not None:
        raise ValueError("a create_addition approval has no addition_id or from_quantity yet")
    elif row["agreement_id"] is None:
        raise ValueError("a create_addition approval names the agreement_id to add to")


def _refuse_second_pending(conn: sa.Connection, row: NewApproval) -> None:
    a = approvals
    stmt = sa.select(a.c.id).where(
        a.c.tenant == row["tenant"],
        a.c.billing_date == row["billing_date"],
        a.c.sync_key == row["sync_key"],
        a.c.status == "pending",
    )
    if conn.execute(stmt).first() is not None:
        raise ApprovalConflict(_pending_message(row))


def _pending_message(row: NewApproval) -> str:
    return (
        f"{row['sync_key']} already has a pending approval for {row['billing_date']} "
        f"(tenant {row['tenant']}): revoke it first"
    )


def get_approval(engine: Engine, approval_id: int, *, tenant: str) -> ApprovalRow | None:
    """The tenant's approval of that id; another tenant's is as absent as one that does not exist."""
    a = approvals
    with _reading(engine) as conn:
        row = conn.execute(sa.select(a).where(a.c.id == int(approval_id), a.c.tenant == tenant)).first()
    return None if row is None else _row(row, ApprovalRow)


def list_approvals(
    engine: Engine,
    *,
    tenant: str,
    billing_date: date | datetime | str | None = None,
    status: str | None = None,
    sync_key: str | None = None,
    limit: int | None = 500,
    offset: int = 0,
) -> list[ApprovalRow]:
    """The tenant's approvals matching every given filter, oldest first."""
    a = approvals
    where = [a.c.tenant == _tenant_id(tenant)]
    if billing_date is not None:
        where.append(a.c.billing_date == _as_date(billing_date))
    if status is not None:
        if status not in APPROVAL_STATUSES:
            raise ValueError(f"status must be one of {list(APPROVAL_STATUSES)}, not {status!r}")
        where.append(a.c.status == status)
    if sync_key is not None:
        where.append(a.c.sync_key == sync_key)
    stmt = sa.select(a).where(*where).order_by(a.c.id).limit(limit).offset(offset)
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt), ApprovalRow)


def set_approval_status(
    engine: Engine,
    approval_id: int,
    status: str,
    *,
    tenant: str,
    run_id: str | None = None,
    note: str | None = None,
    user: str | None = None,
    user_id: str | None = None,
    reason: str | None = None,
) -> ApprovalRow:
    """Close one of the tenant's pending approvals; returns the row.

    `applied`: a run pushed exactly the approved change (`run_id` required; recorded with the time
    in applied_run_id / applied_at). `stale`: a run found it no longer matches what it computes.
    `revoked`: a person withdrew it. Only a pending approval changes (`ApprovalConflict` otherwise).
    `note`, when given, replaces the note (who revoked it and why, say). A revocation is a person's
    decision: kept in the decision history as `revoke` by `user` (`user_id`), noted `reason` (the
    person's own words), in the same transaction. A run's `applied` / `stale` is no person's: the
    ledger and the row record those.
    """
    if status not in APPROVAL_STATUSES or status == "pending":
        closing = [s for s in APPROVAL_STATUSES if s != "pending"]
        raise ValueError(f"status must be one of {closing}, not {status!r}")
    a = approvals
    this = (a.c.id == int(approval_id), a.c.tenant == tenant)
    close = a.update().where(*this, a.c.status == "pending").values(status=status)
    if status == "applied":
        close = close.values(applied_run_id=_text(run_id, "run_id"), applied_at=_now())
    if note is not None:
        close = close.values(note=note)
    with _writing(engine) as conn:
        before = conn.execute(sa.select(a).where(*this)).first()
        if conn.execute(close).rowcount == 0:
            found = conn.execute(sa.select(a.c.status).where(*this)).scalar()
            if found is None:
                raise ApprovalNotFound(f"no approval {approval_id}")
            raise ApprovalConflict(f"approval {approval_id} is {found}, not pending")
        closed = _row(conn.execute(sa.select(a).where(a.c.id == int(approval_id))).one(), ApprovalRow)
        if status == "revoked" and before is not None:
            _append(
                conn,
                "revoke",
                _row(before, ApprovalRow),
                closed,
                user,
                user_id,
                reason,
                _approved_from(conn, closed),
            )
        return closed


def _approved_from(conn: sa.Connection, approval: ApprovalRow) -> int | None:
    """The quarantine row the approval was made from, as its own history entry names it."""
    d = decision_history
    return conn.execute(
        sa.select(d.c.quarantine_id).where(
            d.c.tenant == approval["tenant"],
            d.c.approval_id == approval["id"],
            d.c.kind.in_(("approve", "create")),
        )
    ).scalar()


def _append(
    conn: sa.Connection,
    kind: str,
    before: ApprovalRow | None,
    after: ApprovalRow,
    user: str | None,
    user_id: str | None,
    note: str | None,
    quarantine_id: int | None,
) -> None:
    """The decision's entry in the history, on the decision's own connection and transaction."""
    append_decision(
        conn,
        kind,
        tenant=after["tenant"],
        subject="approval",
        subject_id=after["id"],
        user=user,
        user_id=user_id,
        before=before,
        after=after,
        note=note,
        sync_key=after["sync_key"],
        cw_company_id=after["cw_company_id"],
        product=after["product"],
        approval_id=after["id"],
        quarantine_id=quarantine_id,
    )
