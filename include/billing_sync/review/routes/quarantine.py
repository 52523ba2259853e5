"""Billing quarantine: the list with its filters, one row, and a reviewer's decision on a row.

The list groups rows by ConnectWise company, else Huntress organization (one line per group, its
products inside; ``view=rows`` for the flat list), and maps without leaving it: an ambiguous
organization's candidates as one-click choices, a company picker for an unmapped one, several
organizations at once (`routes.mapping`), and the re-run button that applies it (`routes.rerun`).
``export.csv`` is the filtered view as CSV, written by `billing_sync.csvfile` (formulas defused).

All of it one tenant's (`deps.TenantDep`): a row of another tenant is no row of this page (404).
"""

from collections.abc import Mapping
from datetime import UTC, datetime
from itertools import chain
from typing import Annotated, NotRequired, TypedDict, cast
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlalchemy.engine import Engine

from billing_sync import csvfile, store
from billing_sync.names import REASON_CODES
from billing_sync.report import held_view
from billing_sync.review import airflow_runs, apply_now, cards, picker, suspicious_view
from billing_sync.review.deps import ContextDep, EngineDep, QuarantineDep, ReaderDep, TenantDep
from billing_sync.review.inputs import (
    BACK_MAX,
    NOTE_MAX,
    QuarantineFilter,
    QueryValue,
    bad_request,
    parse_id,
    parse_page,
)
from billing_sync.review.pages import ReviewContext, outcome_query
from billing_sync.review.queries import quarantine as queries
from billing_sync.review.queries import staging
from billing_sync.review.queries.companies import search_companies
from billing_sync.review.routes.history import describe
from billing_sync.review.security import Reviewer
from billing_sync.review.tenancy import PageTenant

router = APIRouter(prefix="/quarantine")

ACTIONS = {"dismiss": "dismissed", "resolve": "resolved", "reopen": "open"}
GROUP_ACTIONS = ("dismiss", "dismiss_apply")  # a decision on a whole card (POST /quarantine/group)
APPLY_SUFFIX = "_apply"  # "resolve_apply": mark resolved, then Apply now (issue 20 §1)
RERUN_DATES = 5  # re-run buttons offered above the list: the newest billing dates of its open rows


class QueueView(TypedDict):
    """The list's rows, flat or grouped (`groups`, empty in the flat view), and their counts."""

    rows: list[queries.QueueRow]
    groups: list[queries.QuarantineGroup]
    total: int
    pages: int
    total_groups: NotRequired[int]


@router.get("", response_class=HTMLResponse)
def quarantine_list(
    request: Request,
    reviewer: ReaderDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
) -> HTMLResponse:
    filters = QuarantineFilter.parse(request.query_params)
    page = parse_page(request.query_params.get("page"))
    pick = picker.Pick.parse(request.query_params)
    size = context.page_size()
    t = tenant.id
    view: QueueView
    rows: list[queries.QueueRow]
    if filters.view == "rows":
        total = store.count_quarantine(eng, **filters.store_filters(), tenant=t)
        # A QuarantineRow is a QueueRow before `cards.mark` adds its badges.
        rows = cast(
            list[queries.QueueRow],
            store.list_quarantine(
                eng,
                **filters.store_filters(),
                limit=size,
                offset=(page - 1) * size,
                order=filters.order,
                tenant=t,
            ),
        )
        view = {"rows": rows, "total": total, "pages": max(1, -(-total // size)), "groups": []}
    else:
        grouped = queries.quarantine_groups(
            eng, filters.store_filters(), tenant=t, limit=size, offset=(page - 1) * size, order=filters.order
        )
        queries.describe_groups(eng, grouped.groups, tenant=t)
        rows = [r for g in grouped.groups for r in g.rows]
        view = {
            "rows": rows,
            "groups": grouped.groups,
            "total": grouped.total_rows,
            "total_groups": grouped.total_groups,
            "pages": max(1, -(-grouped.total_rows // size)),  # pages of rows: a big group goes on
        }
    # The rows' badges: approvals and overrides from the database, apply runs from Airflow (one
    # request, only when some row could be applying).
    runs = cards.applying(request, api, t) if any(r["status"] == "open" for r in rows) else []
    cards.mark(eng, rows, runs, tenant=t)
    rerun_dates = sorted({r["billing_date"] for r in rows if r["status"] == "open"}, reverse=True)
    response = context.render(
        request,
        reviewer,
        "quarantine.html",
        **view,
        page=page,
        filters=filters,
        back=_back_query(filters, page),
        hidden={**filters.query(), "page": page if page > 1 else None},  # what the picker's GET keeps
        statuses=(*store.QUARANTINE_STATUSES, "all"),
        reasons=list(REASON_CODES),
        companies=staging.company_names(eng, tenant=t) if filters.view == "rows" else {},  # groups: their own
        pick=pick,
        search=search_companies(eng, pick.query, tenant=t) if pick.target else None,
        rerun_dates=rerun_dates[:RERUN_DATES],
        rerun_notice=airflow_runs.notice(request),
        held=held_view(store.held_totals(eng, **filters.store_filters(), tenant=t)),  # what the filters hold
        BADGES=cards.BADGES,
        suspicious=suspicious_view.findings(eng, tenant=t),  # the mapping page's "Check these matches"
    )
    return picker.allow_fetch(response)


@router.get("/export.csv")
def quarantine_export(request: Request, _: ReaderDep, eng: EngineDep, tenant: TenantDep) -> Response:
    """The filtered view (every page of it) as CSV; any reader may export what they may read.
    Streamed: read and written a batch of rows at a time, so memory stays flat however many."""
    filters = QuarantineFilter.parse(request.query_params)
    rows = queries.quarantine_export(eng, filters.store_filters(), tenant=tenant.id)
    pieces = csvfile.iter_text(rows, queries.EXPORT_COLUMNS, batch=queries.EXPORT_BATCH)
    # The first piece before the answer starts: the query runs here, so a failing database is this
    # request's error page, not a 200 with a cut-off file.
    first = next(pieces)
    return StreamingResponse(
        chain([first], pieces),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{_export_name(filters, tenant)}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _export_name(filters: QuarantineFilter, tenant: PageTenant) -> str:
    """billing-quarantine[-<tenant>]-<status>[-<billing date>]-<UTC time>.csv: only characters we
    chose or checked (a tenant id is lowercase letters, digits and _); the default tenant unnamed."""
    parts = ["billing-quarantine", *tenant.query().values(), filters.status]
    if filters.billing_date is not None:
        parts.append(filters.billing_date.isoformat())
    parts.append(datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"))
    return "-".join(parts) + ".csv"


def _back_query(filters: QuarantineFilter, page: int = 1) -> str:
    """The list's place a form carries back (its `back` field): its filters and page."""
    place = {**filters.query(), "page": page if page > 1 else None}
    return urlencode({k: v for k, v in place.items() if v is not None})


def parse_back(back: str) -> QuarantineFilter:
    """The list's filters a form carried back (its `back` field): a bad one is a 400."""
    return QuarantineFilter.parse(dict(parse_qsl(back)))


def parse_place(back: str) -> tuple[QuarantineFilter, int]:
    """The list's filters and page a form carried back: a bad one is a 400."""
    return parse_back(back), parse_page(dict(parse_qsl(back)).get("page"))


@router.get("/{row_id}", response_class=HTMLResponse)
def quarantine_row(
    request: Request, row_id: str, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    ident = parse_id(row_id, "row id")
    row = tenant_row(eng, ident, tenant)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No quarantine row {ident}")
    companies = staging.company_names(eng, tenant=tenant.id)
    # Every decision on the row, newest first: who dismissed it before it was reopened, and why.
    entries = [
        describe(e) for e in store.list_decisions(eng, tenant=tenant.id, quarantine_id=ident, limit=None)
    ]
    return context.render(
        request, reviewer, "quarantine_row.html", row=row, companies=companies, back="row", entries=entries
    )


def tenant_row(eng: Engine, row_id: int, tenant: PageTenant) -> store.QuarantineRow | None:
    """The quarantine row, if it is the tenant's: ids are shared by every tenant's rows."""
    return store.get_quarantine(eng, row_id, tenant=tenant.id)


@router.post("/group")
def quarantine_group_action(
    request: Request,
    reviewer: QuarantineDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    group: Annotated[str, Form(max_length=BACK_MAX)],
    action: Annotated[str, Form()],
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
) -> RedirectResponse:
    """A decision on a whole card: dismiss every open row of the group (``group``: its key, e.g.
    "company:369") that the list's filters keep, with one note; ``dismiss_apply``: then Apply now of
    the group's company or organization (the newest billing date of the rows dismissed). Only the
    tenant's rows: another tenant's group of the same key is not touched."""
    if queries.GROUP_KEY.fullmatch(group) is None:
        raise bad_request("group must be company:<id>, organization:<id> or key:<sync key>")
    if action not in GROUP_ACTIONS:
        raise bad_request(f"action must be {' or '.join(GROUP_ACTIONS)}")
    filters, page = parse_place(back)  # before acting: a bad filter refuses the request
    text = note.strip()
    if not text:
        return _to_list(request, context, eng, tenant, filters, page, {"error": "note_required"}, group)
    dismissed = [
        r
        for r in queries.open_group_rows(eng, group, filters.store_filters(), tenant=tenant.id)
        if apply_action(eng, tenant.id, r["id"], "dismissed", text, reviewer) == "dismissed"
    ]
    # Said by the company or organization (the page names it); a key group by how many rows.
    kind, _, ident = group.partition(":")
    done: dict[str, QueryValue] = (
        {"done": f"dismissed_{kind}", "id": ident}
        if kind != "key"
        else {"done": "dismissed_group", "id": len(dismissed)}
    )
    outcome: dict[str, QueryValue] = done if dismissed else {"error": "none_open"}
    scope = _scope_of(dismissed) if action == "dismiss_apply" else None
    if scope is not None:
        what = f"{len(dismissed)} dismissed row{'' if len(dismissed) == 1 else 's'} of {group}"
        outcome |= apply_now.trigger(request, api, tenant.id, scope, what, reviewer=reviewer)
    return _to_list(request, context, eng, tenant, filters, page, outcome, group)


def _scope_of(rows: list[store.QuarantineRow]) -> airflow_runs.Scope | None:
    """What Apply now of a card syncs: its rows' companies and organizations, on the newest billing
    date among them (an older date's invoice is no longer what a company is billed by); None when
    the rows name neither (a key group)."""
    if not rows:
        return None
    companies = tuple(sorted({int(r["cw_company_id"]) for r in rows if r["cw_company_id"] is not None}))
    orgs = tuple(
        sorted(
            {int(r["huntress_organization_id"]) for r in rows if r["huntress_organization_id"] is not None}
        )
    )
    if not companies and not orgs:
        return None
    return airflow_runs.Scope(max(r["billing_date"] for r in rows), companies=companies, organizations=orgs)


@router.post("/{row_id}")
def quarantine_action(
    request: Request,
    row_id: str,
    reviewer: QuarantineDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    action: Annotated[str, Form()],
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
    back: Annotated[str, Form(max_length=BACK_MAX)] = "",
) -> RedirectResponse:
    ident = parse_id(row_id, "row id")
    # "<action>_apply": the action, then Apply now of the row's company or organization.
    base, applying = action.removesuffix(APPLY_SUFFIX), action.endswith(APPLY_SUFFIX)
    if base not in ACTIONS or (applying and base == "reopen"):
        raise bad_request("action must be dismiss, resolve, resolve_apply or reopen")
    # Parsed before acting: a bad filter refuses the whole request, nothing is written.
    place = None if back == "row" else parse_place(back)
    # Another tenant's row is "not found" exactly as a row that never was: the answer tells no one
    # that another tenant has a row of that id.
    outcome = apply_action(eng, tenant.id, ident, ACTIONS[base], note.strip(), reviewer)
    row = tenant_row(eng, ident, tenant) if applying and outcome == ACTIONS[base] else None
    applied: dict[str, str] = {}
    if row is not None:
        org, company = row.get("huntress_organization_id"), row.get("cw_company_id")
        scope = airflow_runs.Scope(
            row["billing_date"],
            companies=(int(company),) if company is not None else (),
            organizations=(int(org),) if org is not None else (),
        )
        applied = apply_now.trigger(
            request, api, tenant.id, scope, f"quarantine row {ident}", reviewer=reviewer
        )
    if place is None:
        return context.redirect(request, f"/quarantine/{ident}", {**outcome_query(outcome, ident), **applied})
    filters, page = place
    about = tenant_row(eng, ident, tenant)
    # Back to the row's card (its group) in the grouped list, to the row in the flat one (and in a
    # key group, whose card has no id of its own).
    key = queries.group_key(about) if about is not None and filters.view == "groups" else ""
    anchor = key if anchor_of(key) else f"row-{ident}"
    query = {**outcome_query(outcome, ident), **applied}
    return _to_list(request, context, eng, tenant, filters, page, query, anchor)


def apply_action(
    eng: Engine, tenant: str, row_id: int, new_status: str, note: str, reviewer: Reviewer
) -> str:
    """The message code of what happened."""
    if new_status == "dismissed" and not note:
        return "note_required"
    try:
        store.set_quarantine_status(
            eng, row_id, new_status, reviewer.name, note or None, tenant=tenant, user_id=reviewer.user_id
        )
    except store.QuarantineNotFound:
        return "not_found"
    except ValueError:
        return "reopen_conflict"
    return new_status


def anchor_of(target: str) -> str:
    """The element of the list a redirect scrolls to: a group key ("company:369") is its card
    (``group-company-369``; a key group, which has no id, its first row is not known here: none);
    anything else is an element id already ("row-5")."""
    kind, _, ident = target.partition(":")
    if kind in ("company", "organization") and ident.isdigit():
        return f"group-{kind}-{ident}"
    return "" if kind == "key" else target


def _to_list(
    request: Request,
    context: ReviewContext,
    eng: Engine,
    tenant: PageTenant,
    filters: QuarantineFilter,
    page: int,
    query: Mapping[str, QueryValue],
    target: str | None,
) -> RedirectResponse:
    """Back to where the person was in the queue: the same filters and page (the last page when
    the decision emptied the one they were on), scrolled to the card or row acted on. Rebuilt from
    parsed filters, so the redirect can only ever land inside this app."""
    if page > 1:
        kept = store.count_quarantine(eng, **filters.store_filters(), tenant=tenant.id)
        page = min(page, max(1, -(-kept // context.page_size())))
    url = context.url(
        request, "/quarantine", {**filters.query(), "page": page if page > 1 else None, **query}
    )
    anchor = anchor_of(target) if target else ""
    return RedirectResponse(url + (f"#{anchor}" if anchor else ""), status.HTTP_303_SEE_OTHER)
