"""Overrides (`billing_overrides`): a standing rule for a company and product.

`minimum`: bill at least `quantity`; `fixed`: bill exactly `quantity`; `exclude`: never touch the
company and product. Store functions: adding, listing and retiring rules, and `overrides_frame`, the
active ones as the frame reconcile applies before the guard (docs/contract.md §3, §4).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import frames
from .database import _reading, _writing
from .decisions import append_decision
from .records import OverrideRow
from .schema import OVERRIDE_RULES, overrides
from .values import _id, _now, _optional_quantity, _row, _rows, _tenant_id, _text, _user


class OverrideNotFound(LookupError):
    """No override has the given id."""


class OverrideConflict(ValueError):
    """The tenant already has an active override for this company and product."""


def add_override(
    engine: Engine,
    *,
    cw_company_id: int,
    product: str,
    rule: str,
    user: str,
    quantity: float | None = None,
    note: str | None = None,
    user_id: str | None = None,
    tenant: str,
) -> OverrideRow:
    """Record an active override; returns the row. `minimum` and `fixed` need a quantity, `exclude`
    takes none. At most one active override per tenant, company and product (`OverrideConflict`:
    retire the old one first)."""
    if rule not in OVERRIDE_RULES:
        raise ValueError(f"rule must be one of {list(OVERRIDE_RULES)}, not {rule!r}")
    amount = _optional_quantity(quantity, "quantity")
    if amount is not None and not amount.is_integer():
        raise ValueError(f"quantity must be a whole number (the sync bills whole units), not {quantity!r}")
    if (rule == "exclude") != (amount is None):
        raise ValueError(
            "an exclude override takes no quantity"
            if amount is not None
            else f"a {rule} override needs a quantity"
        )
    row = {
        "tenant": _tenant_id(tenant),
        "cw_company_id": _id(cw_company_id, "cw_company_id"),
        "product": _text(product, "product"),
        "rule": rule,
        "quantity": amount,
        "note": note,
        "created_by": _user(user),
        "created_by_id": user_id,
        "created_at": _now(),
        "active": True,
    }
    o = overrides
    active = (
        o.c.tenant == row["tenant"],
        o.c.cw_company_id == row["cw_company_id"],
        o.c.product == row["product"],
        o.c.active.is_(True),
    )
    conflict = f"company {row['cw_company_id']} {row['product']} already has an active override"
    try:
        with _writing(engine) as conn:
            existing = conn.execute(sa.select(o.c.id).where(*active)).scalar()
            if existing is not None:
                raise OverrideConflict(f"{conflict} ({existing}): retire it first")
            new_id = conn.execute(o.insert().values(**row).returning(o.c.id)).scalar_one()
            added = _row(conn.execute(sa.select(o).where(o.c.id == new_id)).one(), OverrideRow)
            _append(conn, "override_add", None, added, user, user_id, note)
            return added
    except sa.exc.IntegrityError as exc:  # a concurrent add for the same company and product won
        raise OverrideConflict(conflict) from exc


def list_overrides(
    engine: Engine,
    *,
    tenant: str,
    active: bool | None = True,
    cw_company_id: int | None = None,
    product: str | None = None,
) -> list[OverrideRow]:
    """The tenant's overrides (by default the active ones; `active=None`: all), oldest first."""
    o = overrides
    where = [o.c.tenant == _tenant_id(tenant)]
    if active is not None:
        where.append(o.c.active.is_(bool(active)))
    if cw_company_id is not None:
        where.append(o.c.cw_company_id == _id(cw_company_id, "cw_company_id"))
    if product is not None:
        where.append(o.c.product == product)
    with _reading(engine) as conn:
        return _rows(conn.execute(sa.select(o).where(*where).order_by(o.c.id)), OverrideRow)


def overrides_frame(engine: Engine, *, tenant: str) -> pd.DataFrame:
    """The tenant's active overrides as the `overrides` frame that reconcile applies."""
    rows = list_overrides(engine, tenant=tenant, active=True)
    frame = pd.DataFrame(
        {
            "override_id": [r["id"] for r in rows],
            "company_id": [r["cw_company_id"] for r in rows],
            "product": [r["product"] for r in rows],
            "rule": [r["rule"] for r in rows],
            "quantity": [r["quantity"] for r in rows],
            "created_by": [r["created_by"] for r in rows],
            "note": [r["note"] for r in rows],
        },
        dtype=object,
    )
    return frames.conform(frame, "overrides")


def retire_override(
    engine: Engine, override_id: int, *, tenant: str, user: str | None = None, user_id: str | None = None
) -> OverrideRow:
    """Make an override inactive (kept for the record); returns the row. Retiring a retired one
    changes nothing. With `user` (and `user_id`), who retired it and when is appended to the note:
    the table keeps who set a rule in its columns, and who ended it in the note. Retiring is kept in
    the decision history too (`override_end`, before and after), in the same transaction."""
    o = overrides
    with _writing(engine) as conn:
        row = conn.execute(sa.select(o).where(o.c.id == int(override_id), o.c.tenant == tenant)).first()
        if row is None:
            raise OverrideNotFound(f"no override {override_id}")
        if row.active:
            retire = o.update().where(o.c.id == row.id).values(active=False)
            if user is not None:
                who = _user(user) + (f" (id {user_id})" if user_id and user_id != user else "")
                said = f"retired by {who} {_now().strftime('%Y-%m-%d %H:%M UTC')}"
                retire = retire.values(note=f"{row.note}; {said}" if row.note else said)
            conn.execute(retire)
            before, row = row, conn.execute(sa.select(o).where(o.c.id == row.id)).one()
            _append(
                conn, "override_end", _row(before, OverrideRow), _row(row, OverrideRow), user, user_id, None
            )
    return _row(row, OverrideRow)


def _append(
    conn: sa.Connection,
    kind: str,
    before: OverrideRow | None,
    after: OverrideRow,
    user: str | None,
    user_id: str | None,
    note: str | None,
) -> None:
    """The decision's entry in the history, on the decision's own connection and transaction."""
    append_decision(
        conn,
        kind,
        tenant=after["tenant"],
        subject="override",
        subject_id=after["id"],
        user=user,
        user_id=user_id,
        before=before,
        after=after,
        note=note,
        cw_company_id=after["cw_company_id"],
        product=after["product"],
        override_id=after["id"],
    )
