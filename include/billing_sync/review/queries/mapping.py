"""The mapping page's query: each staged organization with its company and rule.

With the stale billing_org_map rows and the counts by match status (one tenant's, `tenant` keyword).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypedDict, cast

import pandas as pd
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store
from billing_sync.review.queries.staging import Company, CompanyCard, Staged, candidate_ids, card, text

_STATUS_ORDER = {"ambiguous": 0, "unmapped": 1, "matched": 2}


class MappingRow(TypedDict):
    """A staged organization as the mapping page lists it: how it matches, and its mapping."""

    organization_id: int
    name: str
    key: str
    status: str  # matched, unmapped, ambiguous
    match_rule: str | None
    company_id: int | None
    company_name: str
    candidates: list[CompanyCard]  # an ambiguous match's companies
    detail: str | None
    mapped: store.OrgMapping | None  # its billing_org_map row, if any
    mapped_company_name: str
    new: bool  # on the run's invoice for the first time


class StaleMapping(store.OrgMapping):
    """A billing_org_map row of an organization the newest run did not stage."""

    company_name: str


@dataclass
class MappingPage:
    run_id: str | None
    rows: list[MappingRow] = field(default_factory=list)
    companies: list[Company] = field(default_factory=list)
    stale: list[StaleMapping] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    new: int = 0  # organizations new in the run (store.new_organizations): rows with `new` true


def mapping_page(engine: Engine, data: Staged, *, tenant: str) -> MappingPage:
    """Every staged organization with its company and rule; unmatched and ambiguous first."""
    page = MappingPage(run_id=data.run_id)
    if data.run_id is None:
        return page
    org_map = store.list_org_map(engine, tenant=tenant)
    mapped = {r["huntress_organization_id"]: r for r in org_map}
    matches = reconcile.match_organizations(
        data.organizations, data.companies, store.org_map_rows_frame(org_map)
    )
    names = data.company_names()
    cards = data.company_cards()
    orgs = data.organizations.drop_duplicates("organization_id").set_index("organization_id")
    # On the run's invoice for the first time: recorded by no other run (docs/contract.md §4).
    new = {o["id"] for o in store.new_organizations(engine, data.run_id, tenant=tenant)}
    for m in matches.to_dict("records"):
        org_id = int(m["organization_id"])
        org = cast(pd.Series, orgs.loc[org_id])  # one row: the index is unique (drop_duplicates)
        page.rows.append(_mapping_row(m, org, names, cards, mapped.get(org_id), new=org_id in new))
    page.new = sum(1 for r in page.rows if r["new"])
    page.rows.sort(
        key=lambda r: (_STATUS_ORDER.get(r["status"], 9), r["name"].casefold(), r["organization_id"])
    )
    known = data.organization_ids()
    page.stale = [
        {**r, "company_name": names.get(r["cw_company_id"], "")}
        for oid, r in sorted(mapped.items())
        if oid not in known
    ]
    page.companies = sorted(
        ({"id": i, "name": n} for i, n in names.items()), key=lambda c: (c["name"].casefold(), c["id"])
    )
    for r in page.rows:
        page.counts[r["status"]] = page.counts.get(r["status"], 0) + 1
    return page


def _mapping_row(
    m: Mapping[Hashable, Any],
    org: pd.Series,
    names: dict[int, str],
    cards: Mapping[int, CompanyCard],
    mapped: store.OrgMapping | None,
    *,
    new: bool,
) -> MappingRow:
    company_id = None if pd.isna(m["company_id"]) else int(m["company_id"])
    candidates = candidate_ids(m["candidate_company_ids"])
    return {
        "organization_id": int(m["organization_id"]),
        "name": text(org["name"]),
        "key": text(org["key"]),
        "status": str(m["status"]),
        "match_rule": None if pd.isna(m["match_rule"]) else str(m["match_rule"]),
        "company_id": company_id,
        "company_name": names.get(company_id, "") if company_id is not None else "",
        "candidates": [card(cards, c) for c in candidates],
        "detail": None if pd.isna(m["detail"]) else str(m["detail"]),
        "mapped": mapped,
        "mapped_company_name": names.get(mapped["cw_company_id"], "") if mapped else "",
        "new": new,
    }
