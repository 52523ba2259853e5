"""The suspicious matches of the tenant's newest complete staging, for the mapping page's "Check
these matches" section and the quarantine page's one-line count (issue 20 §3).

`reconcile.suspicious` judges; this reads what it judges: the staged organizations and companies of
`store.newest_staged_run` (never a half-staged run), today's billing_org_map, and the tenant's open
`missing_from_invoice` rows (any billing date: each is a company's additions still unexplained).
"""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store
from billing_sync.reconcile.suspicious import Finding, find_suspicious, significant_words
from billing_sync.review import data
from billing_sync.review.inputs import SEARCH_MAX

MISSING = "missing_from_invoice"


def missing_from_invoice(engine: Engine, *, tenant: str) -> pd.DataFrame:
    """The tenant's open `missing_from_invoice` rows as (company_id, product), one per pair."""
    q = store.quarantine
    stmt = (
        sa.select(q.c.cw_company_id, q.c.product)
        .where(
            q.c.tenant == tenant,
            q.c.status == "open",
            q.c.reason_code == MISSING,
            q.c.cw_company_id.is_not(None),
        )
        .distinct()
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return pd.DataFrame(
        {
            "company_id": pd.array([r[0] for r in rows], dtype="Int64"),
            "product": pd.array([r[1] for r in rows], dtype="string"),
        }
    )


def findings(engine: Engine, *, tenant: str, staged: data.Staged | None = None) -> list[Finding]:
    """Every finding of the newest staging (`staged`, when the caller read it already); none before
    a run staged organizations."""
    frames = staged if staged is not None else data.staged(engine, tenant=tenant)
    if frames.run_id is None:
        return []
    org_map = store.org_map_rows_frame(store.list_org_map(engine, tenant=tenant))
    matches = reconcile.match_organizations(frames.organizations, frames.companies, org_map)
    return find_suspicious(
        matches, frames.organizations, frames.companies, missing_from_invoice(engine, tenant=tenant)
    )


def organization_ids(found: list[Finding]) -> set[int]:
    """The organizations the findings name: their rows offer a way to map them elsewhere."""
    return {o for f in found for o in f.organization_ids}


def search_for(name: str) -> str:
    """What "Map to another company" searches the picker for: the organization name's significant
    words ("tidewater marketing" finds "Tidewater Marketing, Inc." too), else the name itself."""
    return (" ".join(significant_words(name)) or name.strip())[:SEARCH_MAX]
