"""The company picker's queries: the newest run's companies and a ranked search.

One tenant's (`tenant` keyword). The query is SQLAlchemy Core over `store.staging_table("companies")`,
values bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store
from billing_sync.review.queries.staging import CompanyCard

SEARCH_LIMIT = 20  # companies one search shows; the rest are counted ("type more")


@dataclass
class CompanySearch:
    """What a search of the newest run's companies found: the best `limit`, and how many in all."""

    query: str
    run_id: str | None
    matches: list[CompanyCard] = field(default_factory=list)
    total: int = 0


def staged_companies(engine: Engine, *, tenant: str) -> tuple[str | None, list[CompanyCard]]:
    """The companies of the run `staged` reads (the newest that staged organizations): the same
    ones a mapping is checked against, so the picker never offers a company the map refuses."""
    run_id = store.newest_staged_run(engine, "organizations", tenant=tenant)
    if run_id is None:
        return None, []
    t = store.staging_table("companies")
    stmt = (
        sa.select(t.c.company_id, t.c.identifier, t.c.name)
        .where(t.c.tenant == tenant, t.c.run_id == run_id, t.c.company_id.is_not(None))
        .order_by(t.c[store.ROW_COLUMN])
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    seen: dict[int, CompanyCard] = {}
    for company_id, identifier, name in rows:
        seen.setdefault(
            int(company_id), {"id": int(company_id), "name": name or "", "identifier": identifier or ""}
        )
    return run_id, list(seen.values())


def search_companies(engine: Engine, query: str, limit: int = SEARCH_LIMIT, *, tenant: str) -> CompanySearch:
    """Companies of the newest run whose id is `query`, or whose name or identifier contains it
    (case-insensitive; names also as the matching rules fold them, so "blue bird" finds
    "Blue-Bird Dental"). Best first: the id, an exact identifier, an exact name, a name starting
    with it, then the rest; ties by name. An empty query finds nothing."""
    run_id, companies = staged_companies(engine, tenant=tenant)
    found = CompanySearch(query=query, run_id=run_id)
    if not query:
        return found
    ranked = [
        (rank, c["name"].casefold(), c["id"], c)
        for c in companies
        if (rank := _search_rank(c, query)) is not None
    ]
    ranked.sort(key=lambda r: r[:3])
    found.total = len(ranked)
    found.matches = [r[3] for r in ranked[:limit]]
    return found


def _search_rank(company: CompanyCard, query: str) -> int | None:
    if query.isascii() and query.isdigit() and str(company["id"]) == query.lstrip("0"):
        return 0
    text = query.casefold()
    identifier = str(company["identifier"]).casefold()
    name = reconcile.normalize_name(str(company["name"]))
    wanted = reconcile.normalize_name(query)
    if identifier and identifier == text:
        return 1
    if wanted and name == wanted:
        return 2
    if wanted and name.startswith(wanted):
        return 3
    if wanted and wanted in name:
        return 4
    if text in identifier:
        return 5
    loose = _alnum(wanted)
    if loose and (loose in _alnum(name) or loose in _alnum(identifier)):
        return 6
    return None


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())
