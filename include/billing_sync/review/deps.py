"""The dependencies every route shares, as `Annotated` aliases.

As in the FastAPI full-stack template's ``deps.py``: routes say ``reviewer: ReaderDep`` or
``eng: EngineDep`` and nothing more.

Who the user is and what they may do is Airflow's to say, and Airflow's security module may only be
imported in the API server; so `current_reader`, `current_editor` and `current_mapper` are keys, not
implementations: `create_app` puts the real ones (`security.airflow_auth()`, or the `ReviewAuth` it
is given) in ``app.dependency_overrides``. A test replaces any of them, or `get_context` /
`get_engine`, the same way::

    app = create_app(engine=engine, auth=auth, csrf_secret=b"k")
    app.dependency_overrides[deps.current_mapper] = lambda: Reviewer("mallory", "7")

- ``TenantDep``: the tenant the page is about (`tenancy.current_tenant`, on the app's own database,
  so the auth of security.py asks the same); every DAG below is its DAG;
- ``ReaderDep``: may read the pages (the ``read`` power); its Reviewer carries every area the user
  holds on the tenant (`Reviewer.may`), so a page shows only what they may do;
- ``requires(area)``: a POST of that area (`powers`: quarantine, mappings, approvals, overrides,
  settings, apply): the user holds the area's power (403 naming it otherwise) and the form's CSRF
  token is checked; ``QuarantineDep``, ``MappingsDep``, ... are its aliases.

Each area has a key (``HOLDERS[area]``) that `create_app` points at the auth's holder of that area
(`security.airflow_auth`), or, for a stand-in auth that does not tell areas apart, at `stand_in`'s
choice among ``current_reader`` / ``current_editor`` / ``current_mapper``.

A tenant gone from the tenants file keeps its history readable, and nothing more: `ReaderDep` offers
its pages no action and every area's dependency refuses.
"""

from collections.abc import Callable
from dataclasses import replace
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, Form, HTTPException, Request, status
from sqlalchemy.engine import Engine

from billing_sync.config import POWER_AREAS, AreaName
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
    return reviewer if tenant.active else replace(reviewer, powers=frozenset({"read"}))


ReaderDep = Annotated[Reviewer, Depends(page_reader)]


def _holder_key(area: AreaName) -> Callable[[], Reviewer]:
    def key() -> Reviewer:
        raise _not_wired()

    key.__name__ = f"current_{area}_holder"
    return key


HOLDERS: dict[AreaName, Callable[[], Reviewer]] = {area: _holder_key(area) for area in POWER_AREAS}


def _via_reader(reviewer: Annotated[Reviewer, Depends(current_reader)]) -> Reviewer:
    return reviewer


def _via_editor(reviewer: Annotated[Reviewer, Depends(current_editor)]) -> Reviewer:
    return reviewer


def _via_mapper(reviewer: Annotated[Reviewer, Depends(current_mapper)]) -> Reviewer:
    return reviewer


def stand_in(area: AreaName) -> Callable[..., Reviewer]:
    """The holder of `area` for an auth that has none: the earlier dependency of its actions (apply
    a reader's: Airflow decides the trigger; quarantine an editor's; the rest a mapper's)."""
    if area in ("read", "apply"):
        return _via_reader
    return _via_editor if area == "quarantine" else _via_mapper


@cache
def requires(area: AreaName) -> Callable[..., Reviewer]:
    """The dependency of a POST of `area`: its holder, a form of ours (CSRF), an active tenant."""

    def holder_of_form(
        request: Request,
        context: ContextDep,
        reviewer: Annotated[Reviewer, Depends(HOLDERS[area])],
        tenant: TenantDep,
        csrf_token: Annotated[str, Form(alias=CSRF_FIELD)] = "",
    ) -> Reviewer:
        context.csrf.check(request, csrf_token, reviewer)
        tenancy.require_active(tenant)
        return reviewer

    holder_of_form.__name__ = f"form_of_{area}"
    return holder_of_form


QuarantineDep = Annotated[Reviewer, Depends(requires("quarantine"))]
MappingsDep = Annotated[Reviewer, Depends(requires("mappings"))]
ApprovalsDep = Annotated[Reviewer, Depends(requires("approvals"))]
OverridesDep = Annotated[Reviewer, Depends(requires("overrides"))]
SettingsDep = Annotated[Reviewer, Depends(requires("settings"))]
ApplyDep = Annotated[Reviewer, Depends(requires("apply"))]


def wire(overrides: dict[Callable[..., Any], Callable[..., Any]], auth: Any) -> None:
    """Point every key of this module at `auth` (a `security.ReviewAuth`)."""
    overrides.update(
        {current_reader: auth.reader, current_editor: auth.editor, current_mapper: auth.mapper or auth.editor}
    )
    given = auth.holders or {}
    overrides.update({HOLDERS[a]: given.get(a) or stand_in(a) for a in POWER_AREAS})
