"""The dependencies every route shares, as ``Annotated`` aliases (the FastAPI full-stack template's
``deps.py``): routes say ``reviewer: ReaderDep`` or ``eng: EngineDep`` and nothing more.

Who the user is and what they may do is Airflow's to say, and Airflow's security module may only be
imported in the API server; so `current_reader`, `current_editor` and `current_mapper` are keys, not
implementations: `create_app` puts the real ones (`security.airflow_auth()`, or the `ReviewAuth` it
is given) in ``app.dependency_overrides``. A test replaces any of them, or `get_context` /
`get_engine`, the same way::

    app = create_app(engine=engine, auth=auth, csrf_secret=b"k")
    app.dependency_overrides[deps.current_mapper] = lambda: Reviewer("mallory", "7")

- ``TenantDep``: the tenant the page is about (`tenancy.current_tenant`, on the app's own database,
  so the auth of security.py asks the same); every DAG below is its DAG;
- ``ReaderDep``: may read the pages (GET on the tenant DAG's runs);
- ``EditorDep``: may act on the quarantine (PUT on its runs), and the form's CSRF token checked;
- ``MapperDep``: may change who is billed (``EditorDep``'s permission and either edit on the DAG or
  a role of ``mapping_roles``), and the form's CSRF token checked.

A tenant gone from the tenants file keeps its history readable, and nothing more: `ReaderDep` offers
its pages no action and `EditorDep` / `MapperDep` refuse every one.
"""

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Request, status
from sqlalchemy.engine import Engine

from billing_sync.review import tenancy
from billing_sync.review.pages import ReviewContext
from billing_sync.review.security import CSRF_FIELD, Reviewer
from billing_sync.review.tenancy import PageTenant, current_tenant


def get_context(request: Request) -> ReviewContext:
    context: ReviewContext = request.app.state.review
    return context


ContextDep = Annotated[ReviewContext, Depends(get_context)]


def get_engine(context: ContextDep) -> Engine:
    return context.db()


EngineDep = Annotated[Engine, Depends(get_engine)]


def _not_wired() -> HTTPException:
    # Reached only by an app not built with create_app: refuse rather than let anyone in.
    return HTTPException(status.HTTP_403_FORBIDDEN, "Billing review auth is not configured")


def current_reader() -> Reviewer:
    raise _not_wired()


def current_editor() -> Reviewer:
    raise _not_wired()


def current_mapper() -> Reviewer:
    raise _not_wired()


TenantDep = Annotated[PageTenant, Depends(current_tenant)]


def page_reader(reviewer: Annotated[Reviewer, Depends(current_reader)], tenant: TenantDep) -> Reviewer:
    # The reviewer first: an anonymous request is a 401 before any tenant is looked up.
    return reviewer if tenant.active else replace(reviewer, may_act=False, may_map=False)


ReaderDep = Annotated[Reviewer, Depends(page_reader)]


def form_editor(
    request: Request,
    context: ContextDep,
    reviewer: Annotated[Reviewer, Depends(current_editor)],
    tenant: TenantDep,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Reviewer:
    context.csrf.check(request, csrf_token, reviewer)
    tenancy.require_active(tenant)
    return reviewer


def form_mapper(
    request: Request,
    context: ContextDep,
    reviewer: Annotated[Reviewer, Depends(current_mapper)],
    tenant: TenantDep,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
) -> Reviewer:
    context.csrf.check(request, csrf_token, reviewer)
    tenancy.require_active(tenant)
    return reviewer


EditorDep = Annotated[Reviewer, Depends(form_editor)]
MapperDep = Annotated[Reviewer, Depends(form_mapper)]
