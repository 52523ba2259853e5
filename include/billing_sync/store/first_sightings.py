"""New organizations (`billing_organizations_seen`): which organizations of a run's invoice are new.

The organizations push runs found on their invoices are recorded once per tenant (docs/contract.md §4).

An organization is *new in a run* when it is on the run's invoice (its staged usage lines) and no
other run recorded it: it has no row yet, or its row's `first_run_id` is this very run (a retried
`record_run` answers as its first attempt did). Only push runs record (`record_organizations_seen`);
a dry run or report-only run reports what is new relative to the record and changes nothing. So the
answer never depends on the order billing dates run in: a run of an older date finds the
organizations later runs recorded already seen, and recording it only moves their
`first_billing_date` earlier.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from ..results import NewOrganization
from .database import _reading, _writing
from .records import OrganizationSeen
from .schema import ROW_COLUMN, organizations_seen, staging_table
from .values import _as_date, _chunks, _now, _rows, _tenant_id


def invoice_organizations(engine: Engine, run_id: str, *, tenant: str) -> list[NewOrganization]:
    """The organizations the run's invoice names (its staged `usage` lines), each once, in invoice
    order: `id` and `name` (the line's, else the staged organization's; None when neither has one).
    Lines without an organization id name none. Empty once the run's staging is purged."""
    with _reading(engine) as conn:
        return _invoice_organizations(conn, tenant, run_id)


def _invoice_organizations(conn: Connection, tenant: str, run_id: str) -> list[NewOrganization]:
    usage, orgs = staging_table("usage"), staging_table("organizations")
    lines = conn.execute(
        sa.select(usage.c.organization_id, usage.c.organization_name)
        .where(usage.c.tenant == tenant, usage.c.run_id == run_id, usage.c.organization_id.is_not(None))
        .order_by(usage.c[ROW_COLUMN])
    ).all()
    found: dict[int, str | None] = {}
    for org_id, name in lines:
        if found.get(int(org_id)) is None:
            found[int(org_id)] = name or None
    unnamed = [o for o, n in found.items() if n is None]
    for chunk in _chunks(unnamed):
        staged = conn.execute(
            sa.select(orgs.c.organization_id, orgs.c.name)
            .where(
                orgs.c.tenant == tenant,
                orgs.c.run_id == run_id,
                orgs.c.organization_id.in_(chunk),
                orgs.c.name.is_not(None),
            )
            .order_by(orgs.c[ROW_COLUMN])
        ).all()
        for org_id, name in staged:
            if found.get(int(org_id)) is None:
                found[int(org_id)] = name
    return [{"id": o, "name": n} for o, n in found.items()]


def new_organizations(engine: Engine, run_id: str, *, tenant: str) -> list[NewOrganization]:
    """The organizations of the run's invoice (`invoice_organizations`) that are new in it: not
    recorded by any other run of the tenant. In invoice order."""
    tenant = _tenant_id(tenant)
    with _reading(engine) as conn:
        on_invoice = _invoice_organizations(conn, tenant, run_id)
        seen = _recorded_by(conn, tenant, [o["id"] for o in on_invoice])
    return [o for o in on_invoice if seen.get(o["id"], run_id) == run_id]


def record_organizations_seen(
    engine: Engine, run_id: str, billing_date: date | datetime | str, *, tenant: str
) -> int:
    """Record the organizations of the run's invoice as seen (a push run does, at its end): a row
    for each one without one (`first_run_id` this run, `first_billing_date` the billing date), and
    `first_billing_date` moved back to the billing date where it was later. Idempotent; returns how
    many rows it added."""
    tenant, day = _tenant_id(tenant), _as_date(billing_date)
    t = organizations_seen
    with _writing(engine) as conn:
        on_invoice = _invoice_organizations(conn, tenant, run_id)
        ids = [o["id"] for o in on_invoice]
        seen = _recorded_by(conn, tenant, ids)
        now = _now()
        rows = [
            {
                "tenant": tenant,
                "huntress_organization_id": o["id"],
                "name": o["name"],
                "first_billing_date": day,
                "first_run_id": run_id,
                "first_seen_at": now,
            }
            for o in on_invoice
            if o["id"] not in seen
        ]
        if rows:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            conn.execute(
                insert(t).on_conflict_do_nothing(index_elements=["tenant", "huntress_organization_id"]), rows
            )
        for chunk in _chunks([o for o in ids if o in seen]):
            conn.execute(
                t.update()
                .where(
                    t.c.tenant == tenant,
                    t.c.huntress_organization_id.in_(chunk),
                    t.c.first_billing_date > day,
                )
                .values(first_billing_date=day)
            )
    return len(rows)


def list_organizations_seen(
    engine: Engine, *, tenant: str, organization_ids: Iterable[int] | None = None
) -> list[OrganizationSeen]:
    """The tenant's rows (only those of `organization_ids` when given), by organization id."""
    t = organizations_seen
    stmt = sa.select(t).where(t.c.tenant == _tenant_id(tenant)).order_by(t.c.huntress_organization_id)
    with _reading(engine) as conn:
        if organization_ids is None:
            return _rows(conn.execute(stmt), OrganizationSeen)
        wanted = sorted({int(o) for o in organization_ids})
        out: list[OrganizationSeen] = []
        for chunk in _chunks(wanted):
            out += _rows(conn.execute(stmt.where(t.c.huntress_organization_id.in_(chunk))), OrganizationSeen)
        return out


def _recorded_by(conn: Connection, tenant: str, ids: list[int]) -> dict[int, str]:
    """organization id → the run that recorded it first, for those of `ids` with a row."""
    t = organizations_seen
    out: dict[int, str] = {}
    for chunk in _chunks(ids):
        stmt = sa.select(t.c.huntress_organization_id, t.c.first_run_id).where(
            t.c.tenant == tenant, t.c.huntress_organization_id.in_(chunk)
        )
        out.update({int(o): str(r) for o, r in conn.execute(stmt)})
    return out
