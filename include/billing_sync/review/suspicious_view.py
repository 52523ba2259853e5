"""The mapping page's suspicious matches of the newest staging.

The suspicious matches of the tenant's newest complete staging, for the mapping page's "Check
these matches" section and the quarantine page's one-line count (issue 20 §3).

`reconcile.suspicious` judges; this reads what it judges: the staged organizations and companies of
`store.newest_staged_run` (never a half-staged run), today's billing_org_map, and the tenant's open
`missing_from_invoice` rows (any billing date: each is a company's additions still unexplained).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store
from billing_sync.reconcile.suspicious import Finding, find_suspicious, significant_words
from billing_sync.review.inputs import SEARCH_MAX
from billing_sync.review.queries import staging

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


# Findings of the last few inputs. A complete staging never changes, so (run, billing_org_map rows,
# open missing_from_invoice pairs) decides them: each page reads those three small things and
# matches the frames again only when one changed (0.5 s at 2,000 organizations, on every quarantine
# page otherwise).
CACHE_SIZE = 16
_cache: OrderedDict[Hashable, list[Finding]] = OrderedDict()
_lock = threading.Lock()


def findings(engine: Engine, *, tenant: str, staged: staging.Staged | None = None) -> list[Finding]:
    """Every finding of the newest staging (`staged`, when the caller read it already); none before
    a run staged organizations."""
    run_id = (
        staged.run_id
        if staged is not None
        else store.newest_staged_run(engine, "organizations", tenant=tenant)
    )
    if run_id is None:
        return []
    rows = store.list_org_map(engine, tenant=tenant)
    missing = missing_from_invoice(engine, tenant=tenant)
    key = (
        str(engine.url),  # its password masked
        tenant,
        run_id,
        tuple((r["huntress_organization_id"], r["cw_company_id"]) for r in rows),
        tuple(zip(missing["company_id"].tolist(), missing["product"].tolist(), strict=True)),
    )
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return list(_cache[key])
    frames = staged if staged is not None else staging.staged(engine, tenant=tenant)
    matches = reconcile.match_organizations(
        frames.organizations, frames.companies, store.org_map_rows_frame(rows)
    )
    found = find_suspicious(matches, frames.organizations, frames.companies, missing)
    if frames.run_id != run_id:
        return found  # a newer run completed meanwhile: what it found is not the key's
    with _lock:
        _cache[key] = found
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return list(found)


def organization_ids(found: list[Finding]) -> set[int]:
    """The organizations the findings name: their rows offer a way to map them elsewhere."""
    return {o for f in found for o in f.organization_ids}


def search_for(name: str) -> str:
    """What "Map to another company" searches the picker for: the organization name's significant
    words ("tidewater marketing" finds "Tidewater Marketing, Inc." too), else the name itself."""
    return (" ".join(significant_words(name)) or name.strip())[:SEARCH_MAX]
