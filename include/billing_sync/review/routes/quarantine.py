"""Billing quarantine: the list with its filters, one row, and a reviewer's decision on a row."""

from typing import Annotated
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.names import REASON_CODES
from billing_sync.review import data
from billing_sync.review.deps import ContextDep, EditorDep, EngineDep, ReaderDep
from billing_sync.review.inputs import BACK_MAX, NOTE_MAX, QuarantineFilter, bad_request, parse_id, parse_page
from billing_sync.review.pages import ReviewContext, outcome_query
from billing_sync.review.security import Reviewer

router = APIRouter(prefix="/quarantine")

ACTIONS = {"dismiss": "dismissed", "resolve": "resolved", "reopen": "open"}


@router.get("", response_class=HTMLResponse)
def quarantine_list(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep
) -> HTMLResponse:
    filters = QuarantineFilter.parse(request.query_params)
    page = parse_page(request.query_params.get("page"))
    size = context.page_size()
    total = store.count_quarantine(eng, **filters.store_filters())
    rows = store.list_quarantine(eng, **filters.store_filters(), limit=size, offset=(page - 1) * size)
    return context.render(
        request,
        reviewer,
        "quarantine.html",
        rows=rows,
        total=total,
        page=page,
        pages=max(1, -(-total // size)),
        filters=filters,
        back=urlencode({k: v for k, v in filters.query().items() if v is not None}),
        statuses=(*store.QUARANTINE_STATUSES, "all"),
        reasons=list(REASON_CODES),
        companies=data.company_names(eng),
    )


@router.get("/{row_id}", response_class=HTMLResponse)
def quarantine_row(
    request: Request, row_id: str, reviewer: ReaderDep, context: ContextDep, eng: EngineDep
) -> HTMLResponse:
    ident = parse_id(row_id, "row id")
    row = store.get_quarantine(eng, ident)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No quarantine row {ident}")
    return context.render(
        request, reviewer, "quarantine_row.html", row=row, companies=data.company_names(eng), back="row"
    )


@router.post("/{row_id}")
def quarantine_action(
    request: Request,
    row_id: str,
    reviewer: EditorDep,
    context: ContextDep,
    eng: EngineDep,
    action: Annotated[str, Form()],
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
) -> RedirectResponse:
    ident = parse_id(row_id, "row id")
    if action not in ACTIONS:
        raise bad_request("action must be dismiss, resolve or reopen")
    # Parsed before acting: a bad filter refuses the whole request, nothing is written.
    filters = None if back == "row" else QuarantineFilter.parse(dict(parse_qsl(back)))
    outcome = apply_action(eng, ident, ACTIONS[action], note.strip(), reviewer)
    return _back(request, context, filters, ident, outcome)


def apply_action(eng: Engine, row_id: int, new_status: str, note: str, reviewer: Reviewer) -> str:
    """The message code of what happened."""
    if new_status == "dismissed" and not note:
        return "note_required"
    try:
        store.set_quarantine_status(
            eng, row_id, new_status, reviewer.name, note or None, user_id=reviewer.user_id
        )
    except store.QuarantineNotFound:
        return "not_found"
    except ValueError:
        return "reopen_conflict"
    return new_status


def _back(
    request: Request, context: ReviewContext, filters: QuarantineFilter | None, row_id: int, outcome: str
) -> RedirectResponse:
    """Back to the list with its filters, or to the row page; rebuilt from parsed filters, so the
    redirect can only ever land inside this app."""
    if filters is None:
        return context.redirect(request, f"/quarantine/{row_id}", outcome_query(outcome, row_id))
    return context.redirect(request, "/quarantine", {**filters.query(), **outcome_query(outcome, row_id)})
