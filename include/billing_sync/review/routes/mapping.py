"""Organization mapping and its suspicious-match check.

Organization mapping: each staged Huntress organization with the company it maps to, and the
`billing_org_map` rows that decide who pays. Changing them takes the ``mappings`` power
(`MappingsDep`), more than acting on the quarantine (docs/ui.md "Auth").

The same forms serve the quarantine list (their ``back`` field carries its filters, and the answer
goes back there): one organization (``POST /mapping``: a typed id, an ambiguous match's candidate
or a picker's match), several at once (``POST /mapping/bulk``), and the picker's search
(``GET /mapping/companies``, an HTML fragment) with its type-ahead script (``/mapping/picker.js``).

Mappings are the page's tenant's (`deps.TenantDep`), checked against that tenant's newest run.

A mapping can be undone (issue 20 §3): the redirect after mapping one organization carries the
company it mapped to before (``undo_was``, absent when none) and now (``undo_to``), and the flash
offers Undo (``templates/_undo.html``: ``POST /mapping/{organization_id}/undo``), which restores
the mapping it replaced or removes the new one through the store, so the decision history records
it as a map or unmap like any other. It changes nothing when the mapping is no longer the one the
flash was about (``undo_stale``).
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.review import airflow_runs, apply_now, picker, suspicious_view
from billing_sync.review.deps import ContextDep, EngineDep, MappingsDep, ReaderDep, TenantDep
from billing_sync.review.inputs import (
    BACK_MAX,
    BULK_MAX,
    NOTE_MAX,
    QuarantineFilter,
    QueryValue,
    optional_id,
    parse_company,
    parse_id,
    parse_ids,
    parse_search,
)
from billing_sync.review.pages import ReviewContext, outcome_query
from billing_sync.review.queries import mapping as queries
from billing_sync.review.queries import staging
from billing_sync.review.queries.companies import search_companies, staged_companies
from billing_sync.review.routes.quarantine import parse_place
from billing_sync.review.security import Reviewer

router = APIRouter(prefix="/mapping")
UNDO_STALE = "undo_stale"  # said by templates/_undo.html (not among pages.MESSAGES)


@router.get("", response_class=HTMLResponse)
def mapping(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    focus = optional_id(request.query_params.get("id"), "id")
    pick = picker.Pick.parse(request.query_params)
    t = tenant.id
    staged = staging.staged(eng, tenant=t)
    page = queries.mapping_page(eng, staged, tenant=t)
    suspicious = suspicious_view.findings(eng, tenant=t, staged=staged)
    run = store.get_run(eng, page.run_id, tenant=t) if page.run_id else None
    response = context.render(
        request,
        reviewer,
        "mapping.html",
        page=page,
        focus=focus,
        pick=pick,
        search=search_companies(eng, pick.query, tenant=t) if pick.target else None,
        rerun_date=run["billing_date"] if run else None,
        rerun_notice=airflow_runs.notice(request),
        bulk_max=BULK_MAX,
        suspicious=suspicious,
        suspicious_orgs=suspicious_view.organization_ids(suspicious),  # their rows offer the picker
        search_for=suspicious_view.search_for,
    )
    return picker.allow_fetch(response)


@router.get("/companies", response_class=HTMLResponse)
def companies(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    """The picker's matches as an HTML fragment: what the type-ahead puts under the search field.
    With ``form``, each match is a button submitting that form with its company id."""
    query = parse_search(request.query_params.get("q"))
    form = picker.check_form(request.query_params.get("form"))
    search = search_companies(eng, query, tenant=tenant.id)
    return context.render(request, reviewer, "_companies.html", search=search, form=form)


@router.get("/picker.js")
def picker_script(_: ReaderDep) -> Response:
    return Response(
        picker.script(),
        media_type="text/javascript; charset=utf-8",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"},
    )


@router.post("")
def set_mapping(
    request: Request,
    reviewer: MappingsDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    organization_id: Annotated[str, Form()],
    company_id: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
    apply: Annotated[str, Form(alias=apply_now.FORM_FIELD)] = "",
) -> RedirectResponse:
    org = parse_id(organization_id, "organization_id")
    place = parse_place(back) if back else None  # before writing: a bad filter writes nothing
    company = _typed_company(eng, company_id, tenant=tenant.id)
    before = _mapped_to(eng, org, tenant=tenant.id)
    outcome = apply_mapping(eng, org, company, note.strip(), reviewer, tenant=tenant.id)
    if outcome == "bad_company" and company_id.strip():
        outcome = "unknown_company"  # a name that is no one company of the newest run
    day = apply_now.staged_billing_date(eng, tenant=tenant.id) if apply_now.wanted(apply) else None
    applied: dict[str, str] = {}
    if outcome == "mapped" and company is not None and before != company:  # what Undo puts back
        applied.update({"undo_to": str(company), **({"undo_was": str(before)} if before is not None else {})})
    if outcome == "mapped" and company is not None and day is not None:
        # Apply now: this organization's usage, billed to the company it now maps to.
        scope = airflow_runs.Scope(day, companies=(company,), organizations=(org,))
        applied = apply_now.trigger(
            request, api, tenant.id, scope, f"mapping of organization {org}", reviewer=reviewer
        )
    return _back(request, context, org, outcome, place, extra=applied)


@router.post("/bulk")
def bulk_mapping(
    request: Request,
    reviewer: MappingsDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    organization_id: Annotated[list[str], Form()] = [],  # noqa: B006 (FastAPI copies the default)
    company_id: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
) -> RedirectResponse:
    """Several organizations to one company in one request: all or nothing. Every id is checked
    (a malformed one, or more than BULK_MAX, is a 400), then every organization and the company
    against the newest run; only when all pass is anything written."""
    orgs = parse_ids(organization_id, "organization_id")
    place = parse_place(back) if back else None
    company = parse_company(company_id)
    outcome, about = apply_bulk_mapping(eng, orgs, company, note.strip(), reviewer, tenant=tenant.id)
    return _back(request, context, about, outcome, place, anchor="bulk")


@router.post("/{organization_id}/delete")
def delete_mapping(
    request: Request,
    organization_id: str,
    reviewer: MappingsDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
) -> RedirectResponse:
    org = parse_id(organization_id, "organization_id")
    # Who removed it goes into the decision history with the mapping as it stood.
    removed = store.delete_org_map(eng, org, tenant=tenant.id, user=reviewer.name, user_id=reviewer.user_id)
    return _back(request, context, org, "unmapped" if removed else "no_mapping")


@router.post("/{organization_id}/undo")
def undo_mapping(
    request: Request,
    organization_id: str,
    reviewer: MappingsDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    was: Annotated[str, Form()] = "",
    to: Annotated[str, Form()] = "",
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
) -> RedirectResponse:
    """Undo the mapping a flash offered it for: back to company `was` (none: the mapping removed),
    only while the organization still maps to `to`."""
    org = parse_id(organization_id, "organization_id")
    place = parse_place(back) if back else None
    mapped = parse_id(to, "to")
    previous = optional_id(was, "was")
    if _mapped_to(eng, org, tenant=tenant.id) != mapped:
        return _back(request, context, org, UNDO_STALE, place)
    if previous is None:
        store.delete_org_map(eng, org, tenant=tenant.id, user=reviewer.name, user_id=reviewer.user_id)
        return _back(request, context, org, "unmapped", place)
    note = f"Undo: back from company {mapped} to company {previous}"
    store.set_org_map(eng, org, previous, note, reviewer.name, user_id=reviewer.user_id, tenant=tenant.id)
    return _back(request, context, org, "mapped", place)


def _typed_company(eng: Engine, raw: str, *, tenant: str) -> int | None:
    """The company the mapping page's field names: an id as before (digits of any script checked
    by `parse_company`), else a name or "Name #id" resolved against the newest run (`picker.resolve`)."""
    value = raw.strip()
    if not value or value.isdigit():
        return parse_company(value)
    return picker.resolve(value, staged_companies(eng, tenant=tenant)[1])[0]


def _mapped_to(eng: Engine, organization_id: int, *, tenant: str) -> int | None:
    """The company the organization maps to now, or None."""
    rows = store.list_org_map(eng, tenant=tenant)
    return next(
        (int(r["cw_company_id"]) for r in rows if r["huntress_organization_id"] == organization_id), None
    )


def apply_mapping(
    eng: Engine, organization_id: int, company: int | None, note: str, reviewer: Reviewer, *, tenant: str
) -> str:
    """Validate against the tenant's newest staged frames, then write; returns the message code."""
    if company is None:
        return "bad_company"
    staged = staging.staged(eng, tenant=tenant)
    if organization_id not in staged.organization_ids():
        return "unknown_organization"
    if company not in staged.company_ids():
        return "unknown_company"
    store.set_org_map(
        eng, organization_id, company, note or None, reviewer.name, user_id=reviewer.user_id, tenant=tenant
    )
    return "mapped"


def apply_bulk_mapping(
    eng: Engine,
    organization_ids: list[int],
    company: int | None,
    note: str,
    reviewer: Reviewer,
    *,
    tenant: str,
) -> tuple[str, int]:
    """(message code, the id it is about): every check first, then one `set_org_map` per
    organization, each recording the user's name and id as a single mapping does."""
    if not organization_ids:
        return "none_selected", 0
    if company is None:
        return "bad_company", 0
    staged = staging.staged(eng, tenant=tenant)
    known = staged.organization_ids()
    unknown = [o for o in organization_ids if o not in known]
    if unknown:
        return "unknown_organization", unknown[0]
    if company not in staged.company_ids():
        return "unknown_company", 0
    for org in organization_ids:
        store.set_org_map(
            eng, org, company, note or None, reviewer.name, user_id=reviewer.user_id, tenant=tenant
        )
    return (
        ("mapped", organization_ids[0])
        if len(organization_ids) == 1
        else ("mapped_many", len(organization_ids))
    )


def _back(
    request: Request,
    context: ReviewContext,
    organization_id: int,
    outcome: str,
    place: tuple[QuarantineFilter, int] | None = None,
    anchor: str | None = None,
    extra: dict[str, str] | None = None,
) -> RedirectResponse:
    """Back to the page the form was on: the quarantine list with its filters and page (`place`),
    else the mapping; `extra`: Apply now's outcome."""
    said: dict[str, QueryValue] | None = (
        {"error": outcome, "id": organization_id} if outcome == UNDO_STALE else None
    )
    query = {**(said or outcome_query(outcome, organization_id)), **(extra or {})}
    if place is not None:
        filters, page = place
        target = context.url(
            request, "/quarantine", {**filters.query(), "page": page if page > 1 else None, **query}
        )
        fragment = anchor or f"group-organization-{organization_id}"
    else:
        target = context.url(request, "/mapping", query)
        fragment = anchor or f"org-{organization_id}"
    return RedirectResponse(f"{target}#{fragment}", status.HTTP_303_SEE_OTHER)
