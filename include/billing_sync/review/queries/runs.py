"""The runs pages' queries: run counts, the amounts held for their charts, a run's recorded money."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.results import MoneyTotals


def recorded_money(run: store.RunRecord) -> MoneyTotals | None:
    """The money the run recorded in its checks; None for a run that recorded none (it failed, or
    has not finished)."""
    checks = run["checks"]
    found = checks.get("money") if checks else None
    # Only a failed run's checks (results.FailedChecks) lack the money.
    return found if isinstance(found, dict) and found else None


def count_runs(engine: Engine, *, tenant: str) -> int:
    """How many runs the tenant has on record (the runs list's total)."""
    r = store.runs
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(r.c.tenant == tenant)).scalar_one())


def held_amounts(
    engine: Engine, by: tuple[str, ...], *, tenant: str, status: str | None = None, run_id: str | None = None
) -> dict[tuple[str, ...], float]:
    """`charts.held_by_product` / `held_by_date` summed by the database: the amount at stake per
    `by` ("product", or "billing_date" and "product") over the tenant's rows that carry one, so a
    chart reads one row per product and date, not every quarantine row. Keys as those functions
    make them (text, "" for none)."""
    q = store.quarantine
    where = [q.c.tenant == tenant, q.c.amount_at_stake.is_not(None)]
    if status is not None:
        where.append(q.c.status == status)
    if run_id is not None:
        where.append(q.c.run_id == run_id)
    fields = [q.c[f] for f in by]
    stmt = sa.select(*fields, sa.func.sum(q.c.amount_at_stake)).where(*where).group_by(*fields)
    with engine.connect() as conn:
        return {
            tuple("" if v is None else str(v) for v in row[:-1]): float(row[-1]) for row in conn.execute(stmt)
        }
