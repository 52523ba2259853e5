"""The quarantine (`billing_quarantine`): open rows and reviewers' decisions.

At most one open row per tenant, billing date, key and reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .. import money
from ..money import ZERO
from ..names import reason_rank
from ..results import HeldReason, HeldTotals
from ..run_rows import QuarantineInput
from .database import _reading, _writing
from .decisions import append_decision
from .records import QuarantineDecided, QuarantineRow
from .schema import QUARANTINE_STATUSES, REASON_CODES, quarantine
from .values import _amount, _as_date, _chunks, _clean, _now, _row, _rows, _tenant_id, _text


class QuarantineNotFound(LookupError):
    """No quarantine row has the given id."""


_Q_FIELDS = (
    "huntress_organization_id",
    "huntress_organization_name",
    "cw_company_id",
    "product",
    "catalog_identifier",  # revision 0011
    "detail",
)


def upsert_quarantine(
    engine: Engine,
    run_id: str,
    billing_date: date | datetime | str,
    rows: Iterable[QuarantineInput],
    *,
    tenant: str,
) -> int:
    """Record this run's quarantined keys; returns the number of open rows inserted or refreshed.

    At most one open row per (tenant, billing_date, sync_key, reason_code): a re-run refreshes that row's
    run_id, detail, payload, names and last_seen_at. A dismissed row for the same triple stays
    dismissed (a user decided it for that billing date): only its last_seen_at moves, so the review
    shows the problem is still reported. A resolved row does not block a new open one.
    """
    day, tenant = _as_date(billing_date), _tenant_id(tenant)
    wanted = {(r["sync_key"], r["reason_code"]): r for r in map(_quarantine_input, rows)}
    if not wanted:
        return 0
    # A concurrent run of the same billing date may insert the same open row between our read and
    # write; the unique index refuses it and the second attempt refreshes that row instead.
    try:
        with _writing(engine) as conn:
            return _upsert_quarantine(conn, tenant, run_id, day, wanted)
    except sa.exc.IntegrityError:
        with _writing(engine) as conn:
            return _upsert_quarantine(conn, tenant, run_id, day, wanted)


def _quarantine_input(row: QuarantineInput) -> QuarantineInput:
    """The row checked and cleaned for the driver (a frame's value may be a numpy scalar or NA)."""
    reason = _text(row.get("reason_code"), "reason_code")
    if reason not in REASON_CODES:
        raise ValueError(f"unknown reason_code {reason!r}; known: {list(REASON_CODES)}")
    cleaned = {
        **{f: _clean(row.get(f)) for f in _Q_FIELDS},
        "sync_key": _text(row.get("sync_key"), "sync_key"),
        "reason_code": reason,
        "payload": row.get("payload"),
        "amount_at_stake": _amount(row.get("amount_at_stake"), "amount_at_stake"),
    }
    return cast(QuarantineInput, cleaned)  # QuarantineInput's columns, values as the driver takes them


def _upsert_quarantine(
    conn: Connection, tenant: str, run_id: str, day: date, wanted: Mapping[tuple[str, str], QuarantineInput]
) -> int:
    q = quarantine
    stmt = sa.select(q.c.id, q.c.sync_key, q.c.reason_code, q.c.status).where(
        q.c.tenant == tenant, q.c.billing_date == day, q.c.status.in_(("open", "dismissed"))
    )
    existing: dict[tuple[str, str], tuple[int, str]] = {}
    for row_id, key, reason, status in conn.execute(stmt):
        if existing.get((key, reason), (0, ""))[1] != "open":  # an open row wins over a dismissed one
            existing[(key, reason)] = (row_id, status)
    now = _now()
    inserts, refreshes, dismissed = [], [], []
    for triple, row in wanted.items():
        row_id, status = existing.get(triple, (None, None))
        if status == "dismissed":
            dismissed.append({"b_id": row_id, "b_seen": now})
        elif status == "open":
            refreshes.append(
                {**{f"b_{k}": v for k, v in row.items()}, "b_id": row_id, "b_run": run_id, "b_seen": now}
            )
        else:
            inserts.append(
                {
                    **row,
                    "tenant": tenant,
                    "run_id": run_id,
                    "billing_date": day,
                    "status": "open",
                    "first_seen_at": now,
                    "last_seen_at": now,
                }
            )
    if inserts:
        conn.execute(q.insert(), inserts)
    if refreshes:
        fields = (*_Q_FIELDS, "payload", "amount_at_stake")
        values = {f: sa.bindparam(f"b_{f}", type_=q.c[f].type) for f in fields}
        refresh = q.update().where(q.c.id == sa.bindparam("b_id"))
        conn.execute(
            refresh.values(**values, run_id=sa.bindparam("b_run"), last_seen_at=sa.bindparam("b_seen")),
            refreshes,
        )
    if dismissed:
        seen = q.update().where(q.c.id == sa.bindparam("b_id")).values(last_seen_at=sa.bindparam("b_seen"))
        conn.execute(seen, dismissed)
    return len(inserts) + len(refreshes)


def resolve_synced(
    engine: Engine,
    run_id: str,
    billing_date: date | datetime | str,
    sync_keys: Iterable[str],
    *,
    tenant: str,
    by: str | None = None,
) -> int:
    """Resolve open rows of these keys for this billing date and earlier ones: the key is now in step.

    `by`: what a person reads as the resolver ("approval #1 (admin)" when a write applied an
    approval); `resolved_by_id` stays "sync:<run_id>" either way, so the run remains traceable.

    Call it with keys whose outcome settled the key (updated, unchanged, not_applicable). Later
    billing dates are left alone: an older run succeeding says nothing about a newer invoice.
    """
    day, keys = _as_date(billing_date), sorted(set(sync_keys))
    q, resolved = quarantine, 0
    ident = f"sync:{run_id}"  # the sync is the "user": the same text in both audit columns
    values = {
        "status": "resolved",
        "resolved_at": _now(),
        "resolved_by": by or ident,
        "resolved_by_id": ident,
    }
    with _writing(engine) as conn:
        for chunk in _chunks(keys):
            where = (
                q.c.tenant == tenant,
                q.c.status == "open",
                q.c.billing_date <= day,
                q.c.sync_key.in_(chunk),
            )
            resolved += conn.execute(q.update().where(*where).values(**values)).rowcount
    return resolved


def resolve_superseded(
    engine: Engine,
    run_id: str,
    billing_date: date | datetime | str,
    current: Mapping[str, str],
    seen_keys: Iterable[str] | None = None,
    *,
    tenant: str,
    within: Iterable[str] | None = None,
) -> int:
    """Resolve the tenant's open rows of this billing date that this run's picture contradicts.

    `current` maps each key this run quarantined to its reason. An open row of this billing date
    whose key is now quarantined for a *different* reason is resolved with the note "superseded by
    <reason>" (the current reason has, or gets, its own row). When `seen_keys` is given (every key
    the run produced an outcome for, quarantined or not), an open row of this billing date whose key
    the run never produced is resolved too, noted "no longer reported" (e.g. an organization key
    after the organization got mapped: its usage now syncs under a company key). Rows of other
    billing dates are untouched. Keys not in `current` but seen are left to `resolve_synced`, so
    push-time reasons survive until the key really syncs.

    `within` (a scoped run, billing_sync.apply): only open rows of these keys are considered; a
    scoped run saw only its own keys, so every other key's row is none of its business.
    """
    day, now, by = _as_date(billing_date), _now(), f"sync:{run_id}"
    seen = None if seen_keys is None else set(seen_keys) | set(current)
    only = None if within is None else set(within)
    q = quarantine
    with _writing(engine) as conn:
        open_rows = conn.execute(
            sa.select(q.c.id, q.c.sync_key, q.c.reason_code, q.c.note).where(
                q.c.tenant == tenant, q.c.billing_date == day, q.c.status == "open"
            )
        ).all()
        updates = []
        for row_id, key, reason, note in open_rows:
            if only is not None and key not in only:
                continue
            if key in current and current[key] != reason:
                why = f"superseded by {current[key]}"
            elif seen is not None and key not in seen:
                why = "no longer reported"
            else:
                continue
            updates.append({"b_id": row_id, "b_note": _append_note(note, why)})
        if updates:
            stmt = q.update().where(q.c.id == sa.bindparam("b_id"), q.c.status == "open")
            conn.execute(
                stmt.values(
                    status="resolved",
                    resolved_at=now,
                    resolved_by=by,
                    resolved_by_id=by,
                    note=sa.bindparam("b_note"),
                ),
                updates,
            )
    return len(updates)


def _append_note(note: str | None, text: str) -> str:
    return f"{note}; {text}" if note else text


def _quarantine_filters(
    tenant: str,
    status: str | None,
    billing_date: date | datetime | str | None,
    reason_code: str | None,
    company_id: int | None,
    run_id: str | None,
    sync_key: str | None,
) -> list[sa.ColumnElement[bool]]:
    q, where = quarantine, [quarantine.c.tenant == tenant]
    if status is not None:
        where.append(q.c.status == status)
    if billing_date is not None:
        where.append(q.c.billing_date == _as_date(billing_date))
    if reason_code is not None:
        where.append(q.c.reason_code == reason_code)
    if company_id is not None:
        where.append(q.c.cw_company_id == int(company_id))
    if run_id is not None:
        where.append(q.c.run_id == run_id)
    if sync_key is not None:
        where.append(q.c.sync_key == sync_key)
    return where


def list_quarantine(
    engine: Engine,
    *,
    status: str | None = None,
    billing_date: date | datetime | str | None = None,
    reason_code: str | None = None,
    company_id: int | None = None,
    run_id: str | None = None,
    sync_key: str | None = None,
    tenant: str,
    limit: int | None = 500,
    offset: int = 0,
    order: str = "seen",
) -> list[QuarantineRow]:
    """Quarantine rows matching every given filter: most recently seen first, or with
    ``order="amount"`` the largest `amount_at_stake` first (rows without one last; then the most
    recently seen), which is how a billing manager works the queue."""
    where = _quarantine_filters(tenant, status, billing_date, reason_code, company_id, run_id, sync_key)
    q = quarantine
    stmt = (
        sa.select(q)
        .where(*where)
        .order_by(*quarantine_order(order), q.c.last_seen_at.desc(), q.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt), QuarantineRow)


QUARANTINE_ORDERS = ("seen", "amount")


def quarantine_order(order: str) -> list[sa.ColumnElement[Any]]:
    """The ORDER BY terms of a quarantine order before the tie-breakers (last seen, id): none for
    "seen"; for "amount" the amount at stake, largest first and rows without one last (spelled
    without NULLS LAST, so SQLite and PostgreSQL sort alike). Other queries over the quarantine
    (the review page's grouped view) use it too."""
    if order not in QUARANTINE_ORDERS:
        raise ValueError(f"order must be one of {list(QUARANTINE_ORDERS)}, not {order!r}")
    if order == "seen":
        return []
    amount = quarantine.c.amount_at_stake
    return [sa.case((amount.is_(None), 1), else_=0), amount.desc()]


def quarantine_group_order(order: str) -> list[sa.ColumnElement[Any]]:
    """`quarantine_order` for a query GROUPed over quarantine rows (the review page's grouped view):
    for "amount" the group's total amount at stake, largest first, groups with none last; none for
    "seen". Put before the query's own tie-breakers."""
    if order not in QUARANTINE_ORDERS:
        raise ValueError(f"order must be one of {list(QUARANTINE_ORDERS)}, not {order!r}")
    if order == "seen":
        return []
    held = sa.func.sum(quarantine.c.amount_at_stake)
    return [sa.case((held.is_(None), 1), else_=0), held.desc()]


def held_totals(
    engine: Engine,
    *,
    status: str | None = "open",
    billing_date: date | datetime | str | None = None,
    reason_code: str | None = None,
    company_id: int | None = None,
    run_id: str | None = None,
    sync_key: str | None = None,
    tenant: str,
) -> HeldTotals:
    """The money held in the quarantine rows matching the filters (by default the open ones), by
    reason: ``{"reasons": [{"reason_code", "rows", "priced_rows", "amount"}, ...], "rows",
    "priced_rows", "amount"}``, reasons in the contract's order. `amount` is the exact sum (Decimal)
    of `amount_at_stake` over the rows that carry one (`priced_rows`); summed here, not by the
    database, so SQLite's floating-point SUM never reaches it."""
    where = _quarantine_filters(tenant, status, billing_date, reason_code, company_id, run_id, sync_key)
    q = quarantine
    stmt = sa.select(q.c.reason_code, q.c.amount_at_stake).where(*where)
    by: dict[str, HeldReason] = {}
    with _reading(engine) as conn:
        for reason, amount in conn.execute(stmt):
            entry = by.setdefault(
                reason, {"reason_code": reason, "rows": 0, "priced_rows": 0, "amount": ZERO}
            )
            entry["rows"] += 1
            value = money.amount(amount)
            if value is not None:
                entry["priced_rows"] += 1
                entry["amount"] += value
    reasons = sorted(by.values(), key=lambda e: (reason_rank(e["reason_code"]), e["reason_code"]))
    return {
        "reasons": reasons,
        "rows": sum(e["rows"] for e in reasons),
        "priced_rows": sum(e["priced_rows"] for e in reasons),
        "amount": sum((e["amount"] for e in reasons), ZERO),
    }


def count_quarantine(
    engine: Engine,
    *,
    status: str | None = None,
    billing_date: date | datetime | str | None = None,
    reason_code: str | None = None,
    company_id: int | None = None,
    run_id: str | None = None,
    sync_key: str | None = None,
    tenant: str,
) -> int:
    """How many rows `list_quarantine` would return without limit/offset (for paging)."""
    where = _quarantine_filters(tenant, status, billing_date, reason_code, company_id, run_id, sync_key)
    with _reading(engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(quarantine).where(*where)).scalar_one()


def get_quarantine(engine: Engine, quarantine_id: int, *, tenant: str) -> QuarantineRow | None:
    """The tenant's row of that id; another tenant's row is as absent as one that does not exist."""
    q = quarantine
    with _reading(engine) as conn:
        row = conn.execute(sa.select(q).where(q.c.id == int(quarantine_id), q.c.tenant == tenant)).first()
    return None if row is None else _row(row, QuarantineRow)


def set_quarantine_status(
    engine: Engine,
    quarantine_id: int,
    status: str,
    user: str,
    note: str | None = None,
    *,
    tenant: str,
    user_id: str | None = None,
) -> QuarantineRow:
    """A reviewer's decision on one of the tenant's rows; returns the updated row.

    dismissed/resolved record resolved_by = user (the display name), resolved_by_id = user_id (the
    auth manager's id of that user) and resolved_at = now (and `note` when given). open (reopen)
    clears resolved_at/resolved_by/resolved_by_id so "open ⇒ not resolved" holds for any reader, and
    keeps who reopened it in the note. Raises ValueError for a bad status, empty user, or a reopen
    that would make a second open row for the same billing date, key and reason;
    QuarantineNotFound for an unknown id.
    """
    if status not in QUARANTINE_STATUSES:
        raise ValueError(f"status must be one of {list(QUARANTINE_STATUSES)}, not {status!r}")
    if not isinstance(user, str) or not user.strip():
        raise ValueError("user is required")
    q = quarantine
    with _writing(engine) as conn:
        row = conn.execute(sa.select(q).where(q.c.id == int(quarantine_id), q.c.tenant == tenant)).first()
        if row is None:
            raise QuarantineNotFound(f"no quarantine row with id {quarantine_id}")
        decide = q.update().where(q.c.id == row.id)
        if status == "open":
            # Who reopened it is kept in the note: "open" clears who resolved it.
            decide = decide.values(
                status="open",
                resolved_at=None,
                resolved_by=None,
                resolved_by_id=None,
                note=_reopen_note(conn, row, user, note),
            )
        else:
            decide = decide.values(
                status=status, resolved_at=_now(), resolved_by=user, resolved_by_id=user_id
            )
            if note is not None:
                decide = decide.values(note=note)
        conn.execute(decide)
        after = _row(conn.execute(sa.select(q).where(q.c.id == row.id)).one(), QuarantineRow)
        # Kept in the history with the row's decision columns before and after (same transaction).
        append_decision(
            conn,
            _DECISION_OF[status],
            tenant=row.tenant,
            subject="quarantine",
            subject_id=row.id,
            user=user,
            user_id=user_id,
            before=_decided(_row(row, QuarantineRow)),
            after=_decided(after),
            note=note,
            quarantine_id=row.id,
            sync_key=row.sync_key,
            huntress_organization_id=row.huntress_organization_id,
            cw_company_id=row.cw_company_id,
            product=row.product,
        )
        return after


_DECISION_OF = {"dismissed": "dismiss", "resolved": "resolve", "open": "reopen"}


def _decided(row: QuarantineRow) -> QuarantineDecided:
    """The row's columns a decision changes (decisions.QUARANTINE_DECIDED)."""
    return {
        "status": row["status"],
        "resolved_at": row["resolved_at"],
        "resolved_by": row["resolved_by"],
        "resolved_by_id": row["resolved_by_id"],
        "note": row["note"],
    }


def _reopen_note(conn: Connection, row: sa.Row[Any], user: str, note: str | None) -> str:
    q = quarantine
    if row.status != "open":
        twin = conn.execute(
            sa.select(q.c.id).where(
                q.c.tenant == row.tenant,  # another tenant's open row is neither a conflict nor news
                q.c.billing_date == row.billing_date,
                q.c.sync_key == row.sync_key,
                q.c.reason_code == row.reason_code,
                q.c.status == "open",
            )
        ).first()
        if twin is not None:
            raise ValueError(
                f"quarantine row {twin.id} is already open for the same billing date, key and reason"
            )
    return f"reopened by {user}" + (f": {note}" if note else "")
