"""Which tenant a page is about.

docs/contract.md §1 Tenants: every page and action shows and changes one tenant's rows, named by
the ``tenant`` query parameter.

The tenants offered are the configured ones (`tenants.configured()`, in the file's order) and then
any other tenant that has runs in `billing_runs`, so the history of a tenant removed from the
tenants file stays readable; such a former tenant has no settings any more, so its pages are read
only. Without the parameter a page is about ``default`` when it is offered, else the first tenant.

URLs carry the parameter for every tenant but ``default``: a link of the single-tenant form looks
as it always did, and the run-report link of the alerts (``…/report?tenant=<id>``, none for the
default) lands on its own tenant's run.

The switcher and the 403 page offer only the tenants the signed-in user may read: the auth
dependencies ask the auth manager about each tenant's DAG and leave the answer with the request
(`remember_readable`); until they have, `readable` offers the chosen tenant alone, so a page that
forgets to ask shows no other tenant, rather than all of them.

`choose` is behind the dependency `deps.current_tenant`: the auth dependencies ask it which DAG's
rights apply, the routes which rows to read; FastAPI resolves it once per request. It also leaves the
tenant in ``request.state`` for `pages.ReviewContext.url`, so every link and redirect keeps it.
"""

from dataclasses import dataclass

import sqlalchemy as sa
from fastapi import HTTPException, Request, status
from sqlalchemy.engine import Engine

from billing_sync import store, tenants

PARAM = "tenant"
_STATE = "billing_tenant"
_READABLE = "billing_readable_tenants"
ID_MAX = 100  # longer than any id a person names; a longer one is refused without being echoed


@dataclass(frozen=True)
class Choice:
    id: str
    active: bool
    dag_id: str  # the DAG whose read right lets a user see this tenant's pages


@dataclass(frozen=True)
class PageTenant:
    """The tenant of a request, and the others the switcher offers."""

    id: str
    dag_id: str  # rights on the pages are rights on this DAG; a re-run triggers it
    variable: str | None  # its settings Variable; None: gone from the tenants file (read only)
    choices: tuple[Choice, ...]  # the switcher: configured tenants first, then former ones

    @property
    def active(self) -> bool:
        return self.variable is not None

    def query(self) -> dict[str, str]:
        """What a URL of this app carries to stay with this tenant."""
        return {} if self.id == tenants.DEFAULT_TENANT else {PARAM: self.id}


def choose(request: Request, engine: Engine) -> PageTenant:
    """The tenant the request names (404 when it names none of the offered ones)."""
    choices = _choices(engine)
    if not choices:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No tenant is configured and no run is on record")
    wanted = request.query_params.get(PARAM)
    tenant_id = _implicit(choices) if wanted in (None, "") else _checked(wanted)
    choice = next((c for c in choices if c.id == tenant_id), None)
    if choice is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"No tenant {tenant_id!r}: it is neither in the tenants file nor in the billing runs",
        )
    chosen = _page_tenant(choice, choices)
    setattr(request.state, _STATE, chosen)
    return chosen


def current_tenant(request: Request) -> PageTenant:
    """The FastAPI dependency of the page's tenant (`deps.TenantDep`; the auth of security.py asks
    it too, and FastAPI resolves it once per request): `choose` on the app's billing database."""
    return choose(request, request.app.state.review.db())


def of_request(request: Request) -> PageTenant | None:
    """The tenant `choose` chose for this request (None before it ran, or when it refused)."""
    chosen = getattr(request.state, _STATE, None)
    return chosen if isinstance(chosen, PageTenant) else None


def query_of(request: Request) -> dict[str, str]:
    chosen = of_request(request)
    return chosen.query() if chosen else {}


def remember_readable(request: Request, choices: tuple[Choice, ...]) -> None:
    """The tenants the request's user may read, as the auth dependency found them."""
    setattr(request.state, _READABLE, choices)


def readable(request: Request) -> tuple[Choice, ...]:
    """The tenants to offer this request's user: those `remember_readable` recorded, else only the
    chosen one (never a tenant nobody asked the auth manager about)."""
    found = getattr(request.state, _READABLE, None)
    if isinstance(found, tuple):
        return found
    chosen = of_request(request)
    return tuple(c for c in chosen.choices if c.id == chosen.id) if chosen else ()


def require_active(tenant: PageTenant) -> None:
    """Refuse an action on a tenant that only has history left."""
    if not tenant.active:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"Tenant {tenant.id!r} is no longer in the tenants file: its pages are read only",
        )


def _choices(engine: Engine) -> tuple[Choice, ...]:
    try:
        configured = {t.id: t.dag_id for t in tenants.configured()}
    except tenants.TenantsFileError as exc:  # the DAG file shows the same error as an import error
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"The tenants file is unusable: {exc}"
        ) from None
    with engine.connect() as conn:
        recorded = conn.execute(sa.select(store.runs.c.tenant).distinct()).scalars().all()
    former = sorted(set(recorded) - set(configured))
    return tuple(Choice(i, True, dag) for i, dag in configured.items()) + tuple(
        Choice(i, False, former_dag_id(i)) for i in former
    )


def _implicit(choices: tuple[Choice, ...]) -> str:
    ids = [c.id for c in choices]
    return tenants.DEFAULT_TENANT if tenants.DEFAULT_TENANT in ids else ids[0]


def _checked(wanted: str) -> str:
    """A tenant id as the tenants file spells them; anything else is no tenant of ours (404)."""
    try:
        if len(wanted) <= ID_MAX:
            return tenants.check_id(wanted)
    except ValueError:
        pass
    raise HTTPException(
        status.HTTP_404_NOT_FOUND, "No such tenant: a tenant id is lowercase letters, digits and _"
    )


def _page_tenant(choice: Choice, choices: tuple[Choice, ...]) -> PageTenant:
    if choice.active:
        tenant = tenants.by_id(choice.id)
        return PageTenant(tenant.id, tenant.dag_id, tenant.variable, choices)
    return PageTenant(choice.id, former_dag_id(choice.id), None, choices)


def former_dag_id(tenant_id: str) -> str:
    """The DAG of a tenant no longer configured: the single-tenant DAG for ``default``, else the
    id a tenants-file entry gets (`tenants.Tenant.dag_id`)."""
    return tenants.dag_id_of(tenant_id)
