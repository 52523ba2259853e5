"""The four-eyes rule (issue 19 §5): money is released by someone other than who set it up.

A tenant turns it on with `four_eyes: true` in its settings Variable (README, Configuration). Read
through Airflow's backends on every decision it governs, as `mapping_roles` is, so a change applies
at once; a Variable that does not parse refuses those decisions (fail closed) rather than dropping
the rule.

Which decisions release money, and who set up what each releases (docs/operations.md):

- approving a held change, or approving a new addition (routes/approvals.py): releases a quantity
  for the key's company and product, which exists because someone mapped an organization to that
  company (`billing_org_map.created_by_id`, any organization mapped to it) and, when a standing
  override decides the key, because someone added that override (`billing_overrides.created_by_id`,
  the active one on the company and product);
- adding a standing override on a company and product that has an open quarantine row (a held key:
  routes/overrides.py): decides what that key is billed, for a company someone mapped
  (`billing_org_map.created_by_id`).

With the rule on, such a decision by a user whose id is among those is refused (403, with the
reason); another user may make it. Users are told apart by the auth manager's user id, never the
display name; a mapping or override recorded without a user id (written by a tool) names no one.
A company matched by identifier or name, not by a mapping, was set up by no one on the pages.
"""

from collections.abc import Iterable

from fastapi import HTTPException, status
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.review.security import Reviewer, tenant_settings
from billing_sync.review.tenancy import PageTenant


def rule_on(tenant: PageTenant) -> bool:
    """The tenant's `four_eyes` setting (403 when its Variable does not parse)."""
    if tenant.variable is None:  # a former tenant: read only, it decides nothing
        return False
    settings = tenant_settings(tenant.variable)
    if settings is None:
        raise HTTPException(status.HTTP_403_FORBIDDEN, variable_broken(tenant.variable))
    return settings.four_eyes


def variable_broken(variable: str) -> str:
    return (
        f"Approvals, new additions and overrides are refused until the Variable {variable} is valid "
        "JSON with valid settings (the four-eyes rule cannot be read)"
    )


def setters(
    maps: list[store.OrgMapping],
    rules: list[store.OverrideRow],
    company_id: int,
    product: str,
    *,
    with_override: bool,
) -> list[tuple[str, str]]:
    """(user id, what they set up) for a decision about the company and product, from the tenant's
    mappings (`store.list_org_map`) and active overrides (`store.list_overrides`): who mapped an
    organization to the company and, `with_override`, who added the override on the key."""
    found = [
        (
            str(m["created_by_id"]),
            f"mapped organization {m['huntress_organization_id']} to company {company_id}",
        )
        for m in maps
        if m["cw_company_id"] == company_id and m["created_by_id"]
    ]
    if with_override:
        found += [
            (
                str(o["created_by_id"]),
                f"added override {o['id']} ({o['rule']}) on company {company_id} {product}",
            )
            for o in rules
            if o["cw_company_id"] == company_id and o["product"] == product and o["created_by_id"]
        ]
    return found


def held_key(eng: Engine, tenant: str, company_id: int, product: str) -> bool:
    """Whether the company and product has an open quarantine row (a key the sync holds)."""
    rows = store.list_quarantine(eng, status="open", company_id=company_id, tenant=tenant, limit=None)
    return any(r["product"] == product for r in rows)


def refusals(
    eng: Engine,
    tenant: PageTenant,
    reviewer: Reviewer,
    keys: Iterable[tuple[int, str]],
    *,
    what: str,
    with_override: bool = True,
) -> dict[tuple[int, str], str]:
    """Why the reviewer may not make the decision (`what`: "approve this change", say) about each
    (company id, product) under the rule: only the keys refused, each with its sentence. Empty when
    the rule is off; every key refused when the Variable does not parse."""
    wanted = set(keys)
    try:
        if not wanted or not rule_on(tenant):
            return {}
    except HTTPException as exc:
        return dict.fromkeys(wanted, str(exc.detail))
    maps = store.list_org_map(eng, tenant=tenant.id)
    rules = store.list_overrides(eng, tenant=tenant.id, active=True) if with_override else []
    out = {}
    for company_id, product in wanted:
        mine = [
            done
            for user, done in setters(maps, rules, company_id, product, with_override=with_override)
            if user == reviewer.user_id
        ]
        if mine:
            out[(company_id, product)] = (
                f"The four-eyes rule is on for this tenant: you {' and '.join(mine)}, so another "
                f"person must {what}."
            )
    return out


def require(
    eng: Engine,
    tenant: PageTenant,
    reviewer: Reviewer,
    company_id: int,
    product: str,
    *,
    what: str,
    with_override: bool = True,
) -> None:
    """A refusal as a 403 carrying its sentence; the caller records nothing."""
    found = refusals(eng, tenant, reviewer, [(company_id, product)], what=what, with_override=with_override)
    if found:
        raise HTTPException(status.HTTP_403_FORBIDDEN, found[(company_id, product)])


OVERRIDE_WHAT = "add it (an override on a company and product the sync holds decides what that key is billed)"


def override_refusal(
    eng: Engine, tenant: PageTenant, reviewer: Reviewer, company_id: int, product: str
) -> str | None:
    """Why the reviewer may not add an override on the company and product under the rule: it
    decides a held key (an open quarantine row) of a company they mapped. None: they may."""
    found = refusals(eng, tenant, reviewer, [(company_id, product)], what=OVERRIDE_WHAT, with_override=False)
    if found and held_key(eng, tenant.id, company_id, product):
        return found[(company_id, product)]
    return None
