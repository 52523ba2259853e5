"""Flash messages that name the organization and company.

Whom a flash after an action is about, in names (issue 20 §3 "flashes that name the organization
and company rather than ids").

The redirect after an action carries only the outcome and an id (`?done=dismissed&id=5`): names are
looked up when the page is drawn, so a name never travels in a URL and a renamed company reads as it is
now. A lookup that finds nothing (a row since deleted, staging purged) leaves the flash as it was.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.review.queries import staging

# Outcomes whose id is a quarantine row; those whose id is a Huntress organization (one mapping).
ROW_OUTCOMES = frozenset({"dismissed", "resolved", "open"})
ORGANIZATION_OUTCOMES = frozenset({"mapped", "unmapped"})


def about_row(engine: Engine, row_id: int, *, tenant: str) -> str:
    """ "Sunrise Dental (organization #12) → Sunrise Dental LLC (company #369), edr", or ''."""
    row = store.get_quarantine(engine, row_id, tenant=tenant)
    if row is None:
        return ""
    company = row.get("cw_company_id")
    names = staging.company_names(engine, tenant=tenant) if company is not None else {}
    return _subject(
        row.get("huntress_organization_name"),
        row.get("huntress_organization_id"),
        names.get(int(company)) if company is not None else None,
        company,
        row.get("product"),
    )


def about_approval(engine: Engine, approval_id: int, *, tenant: str) -> str:
    """The company (and product) an approval is for, by name."""
    approval = store.get_approval(engine, approval_id, tenant=tenant)
    if approval is None:
        return ""
    company = approval["cw_company_id"]
    name = staging.company_names(engine, tenant=tenant).get(int(company))
    return _subject(None, None, name, company, approval.get("product"))


def about_organization(engine: Engine, organization_id: int, *, tenant: str) -> str:
    """ "Parkside Physical Therapy (organization #125) → Parkside PT LLC (company #374)": the name
    from the newest staging, the company it maps to now (none after an unmap), or ''."""
    staged = staging.staged(engine, tenant=tenant)
    orgs = staged.organizations
    named = orgs.loc[orgs["organization_id"] == organization_id, "name"]
    mapped = {
        m["huntress_organization_id"]: m["cw_company_id"] for m in store.list_org_map(engine, tenant=tenant)
    }
    company = mapped.get(organization_id)
    if named.empty and company is None:
        return ""
    company_name = staged.company_names().get(int(company)) if company is not None else None
    return _subject(named.iloc[0] if not named.empty else None, organization_id, company_name, company)


def _subject(org_name: Any, org_id: Any, company_name: Any, company_id: Any, product: Any = None) -> str:
    parts = []
    if org_name or org_id is not None:
        parts.append(
            f"{org_name or 'organization'}" + (f" (organization #{org_id})" if org_id is not None else "")
        )
    if company_name or company_id is not None:
        parts.append(
            f"{company_name or 'company'}" + (f" (company #{company_id})" if company_id is not None else "")
        )
    text = " → ".join(parts)
    return f"{text}, {product}" if text and product else text


def about(engine: Engine, outcome: str, ident: int, *, tenant: str) -> str:
    """Whom the outcome `outcome` of the thing `ident` was about, or '' (an outcome about no one)."""
    if outcome in ROW_OUTCOMES:
        return about_row(engine, ident, tenant=tenant)
    if outcome in ORGANIZATION_OUTCOMES or outcome == "dismissed_organization":  # a card's, too
        return about_organization(engine, ident, tenant=tenant)
    if outcome == "dismissed_company":  # every open row of a company's card
        return _subject(None, None, staging.company_names(engine, tenant=tenant).get(ident), ident)
    return ""
