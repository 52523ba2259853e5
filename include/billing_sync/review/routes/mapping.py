"""Organization mapping: each staged Huntress organization with the company it maps to, and the
`billing_org_map` rows that decide who pays. Changing them takes `MapperDep`, more than acting on
the quarantine (docs/ui.md "Auth")."""

from typing import Annotated

from fastapi import APIRouter, Form, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.review import data
from billing_sync.review.deps import ContextDep, EngineDep, MapperDep, ReaderDep
from billing_sync.review.inputs import NOTE_MAX, optional_id, parse_company, parse_id
from billing_sync.review.pages import ReviewContext, outcome_query
from billing_sync.review.security import Reviewer

router = APIRouter(prefix="/mapping")


@router.get("", response_class=HTMLResponse)
def mapping(request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep) -> HTMLResponse:
    focus = optional_id(request.query_params.get("id"), "id")
    page = data.mapping_page(eng, data.staged(eng))
    return context.render(request, reviewer, "mapping.html", page=page, focus=focus)


@router.post("")
def set_mapping(
    request: Request,
    reviewer: MapperDep,
    context: ContextDep,
    eng: EngineDep,
    organization_id: Annotated[str, Form()],
    company_id: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
) -> RedirectResponse:
    org = parse_id(organization_id, "organization_id")
    outcome = apply_mapping(eng, org, parse_company(company_id), note.strip(), reviewer)
    return _back(request, context, org, outcome)


@router.post("/{organization_id}/delete")
def delete_mapping(
    request: Request, organization_id: str, _: MapperDep, context: ContextDep, eng: EngineDep
) -> RedirectResponse:
    org = parse_id(organization_id, "organization_id")
    removed = store.delete_org_map(eng, org)
    return _back(request, context, org, "unmapped" if removed else "no_mapping")


def apply_mapping(
    eng: Engine, organization_id: int, company: int | None, note: str, reviewer: Reviewer
) -> str:
    """Validate against the newest staged frames, then write; returns the message code."""
    if company is None:
        return "bad_company"
    staged = data.staged(eng)
    if organization_id not in staged.organization_ids():
        return "unknown_organization"
    if company not in staged.company_ids():
        return "unknown_company"
    store.set_org_map(eng, organization_id, company, note or None, reviewer.name, user_id=reviewer.user_id)
    return "mapped"


def _back(request: Request, context: ReviewContext, organization_id: int, outcome: str) -> RedirectResponse:
    target = context.url(request, "/mapping", outcome_query(outcome, organization_id))
    return RedirectResponse(f"{target}#org-{organization_id}", status.HTTP_303_SEE_OTHER)
