"""The manual organization → company map (`billing_org_map`), matching rule 1: one per tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .. import frames
from .database import _reading, _writing
from .decisions import append_decision
from .records import OrgMapping
from .schema import org_map
from .values import _clean, _now, _row, _rows, _tenant_id, _upsert


def org_map_frame(engine: Engine, *, tenant: str) -> pd.DataFrame:
    """The tenant's manual organization → company map as the `org_map` frame (matching rule 1)."""
    return org_map_rows_frame(list_org_map(engine, tenant=tenant))


def org_map_rows_frame(rows: Sequence[OrgMapping]) -> pd.DataFrame:
    """`list_org_map` rows as the `org_map` frame, for a caller that already holds them."""
    df = pd.DataFrame(
        {
            "organization_id": [r["huntress_organization_id"] for r in rows],
            "company_id": [r["cw_company_id"] for r in rows],
        },
        dtype=object,
    )
    return frames.conform(df, "org_map")


def list_org_map(engine: Engine, *, tenant: str) -> list[OrgMapping]:
    stmt = (
        sa.select(org_map)
        .where(org_map.c.tenant == _tenant_id(tenant))
        .order_by(org_map.c.huntress_organization_id)
    )
    with _reading(engine) as conn:
        return _rows(conn.execute(stmt), OrgMapping)


def set_org_map(
    engine: Engine,
    organization_id: int,
    company_id: int,
    note: str | None,
    user: str,
    *,
    user_id: str | None = None,
    tenant: str,
) -> OrgMapping:
    """Map an organization to a company, replacing the tenant's earlier mapping of it; returns the row.

    created_by (display name), created_by_id (the auth manager's user id) and created_at describe
    the mapping as it now stands: changing the company is a new decision, so they move to this user
    and now.
    """
    if not isinstance(user, str) or not user.strip():
        raise ValueError("user is required")
    row: OrgMapping = {
        "tenant": _tenant_id(tenant),
        "huntress_organization_id": _as_id(organization_id, "organization_id"),
        "cw_company_id": _as_id(company_id, "company_id"),
        "note": note,
        "created_by": user,
        "created_at": _now(),
        "created_by_id": user_id,
    }
    stmt = sa.select(org_map).where(
        org_map.c.tenant == row["tenant"],
        org_map.c.huntress_organization_id == row["huntress_organization_id"],
    )
    with _writing(engine) as conn:
        before = conn.execute(stmt).first()
        _upsert(
            conn,
            org_map,
            ("tenant", "huntress_organization_id"),
            [row],
            ("cw_company_id", "note", "created_by", "created_at", "created_by_id"),
        )
        after = _row(conn.execute(stmt).one(), OrgMapping)
        # The earlier mapping and its creator survive in the history (same transaction).
        append_decision(
            conn,
            "map",
            tenant=after["tenant"],
            subject="mapping",
            subject_id=row["huntress_organization_id"],
            user=user,
            user_id=user_id,
            before=None if before is None else _row(before, OrgMapping),
            after=after,
            note=note,
            huntress_organization_id=row["huntress_organization_id"],
            cw_company_id=row["cw_company_id"],
        )
        return after


def delete_org_map(
    engine: Engine,
    organization_id: int,
    *,
    tenant: str,
    user: str | None = None,
    user_id: str | None = None,
) -> bool:
    """Remove the tenant's mapping of an organization; False when there was none. The removed
    mapping is kept in the decision history (`unmap`, by `user`), in the same transaction."""
    this = (
        org_map.c.tenant == _tenant_id(tenant),
        org_map.c.huntress_organization_id == _as_id(organization_id, "organization_id"),
    )
    with _writing(engine) as conn:
        gone = conn.execute(sa.select(org_map).where(*this)).first()
        if gone is None or conn.execute(org_map.delete().where(*this)).rowcount == 0:
            return False
        append_decision(
            conn,
            "unmap",
            tenant=gone.tenant,
            subject="mapping",
            subject_id=gone.huntress_organization_id,
            user=user,
            user_id=user_id,
            before=_row(gone, OrgMapping),
            after=None,
            huntress_organization_id=gone.huntress_organization_id,
            cw_company_id=gone.cw_company_id,
        )
        return True


def _as_id(value: Any, field: str) -> int:
    value = _clean(value)
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ValueError(f"{field} must be an integer id, not {value!r}")
    return value
