"""Approvals: approve one held change or a missing addition.

A person approves exactly one held change, or a missing addition to be created; the DAG applies
it, never this process (docs/contract.md §3, §4 `billing_approvals`).

    GET  /approvals                    the approvals (pending first) and the held rows one may approve
    GET  /approvals/new?row=<id>       the form for one open quarantine row
    POST /approvals                    approve it (ApprovalsDep); ``rerun=1``: then re-run its billing date;
                                       ``rerun=apply``: Apply now (the apply DAG, its company only)
    POST /approvals/{id}/revoke        withdraw a pending approval (ApprovalsDep)

Approving what a customer is billed takes the ``approvals`` power (`deps.ApprovalsDep`); the re-run
or Apply now after it takes ``apply`` too (without it the approval is recorded, and the notice says
applying was not allowed). What is approved comes from the quarantine row as the newest run of its billing
date recorded it, never from the form: the form picks only the row, the agreement (a new addition)
and the note. "Approve and re-run" triggers the run through Airflow's REST API as the signed-in user
(`airflow_runs`), so Airflow's own permissions and audit apply to the run: the run of the page's
tenant's DAG. Approvals and held rows are that tenant's only (`deps.TenantDep`): a row or approval of
another tenant is no row of this page (404).
"""

from datetime import date
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from billing_sync import frames, reconcile, store, tenants
from billing_sync.catalog import identifiers as catalog_identifiers
from billing_sync.config import Settings
from billing_sync.reconcile.approvals import Proposal
from billing_sync.review import airflow_runs, flash, four_eyes, picker, seen
from billing_sync.review.deps import ApprovalsDep, ContextDep, EngineDep, ReaderDep, TenantDep
from billing_sync.review.inputs import NOTE_MAX, QueryValue, bad_request, is_id, optional_id, parse_id
from billing_sync.review.pages import ReviewContext
from billing_sync.review.queries import staging
from billing_sync.review.routes.quarantine import tenant_row
from billing_sync.review.security import Reviewer
from billing_sync.review.seen import Agreement, Offer
from billing_sync.review.tenancy import PageTenant

router = APIRouter(prefix="/approvals")

APPROVABLE = tuple(reconcile.HELD_REASON.values())  # change_exceeds_limit, no_live_addition
HELD_LIMIT = 200  # held rows listed for approval on the page
LIST_LIMIT = 500
STATUSES = (*store.APPROVAL_STATUSES, "all")
# What the page says after an action: chosen by code from the redirect's query, never echoed.
MESSAGES = {
    "approved": ("ok", "Approval {id} recorded. The next run of its billing date applies it."),
    "approved_rerun": ("ok", "Approval {id} recorded; a run of its billing date was triggered to apply it."),
    "approved_rerun_exists": (
        "ok",
        "Approval {id} recorded. Airflow already has a run of that billing date at this moment; the "
        "next run applies it.",
    ),
    "approved_rerun_refused": (
        "error",
        "Approval {id} recorded, but Airflow refused to trigger the run (your login may not trigger "
        "runs of the DAG, or has expired): the next run applies it.",
    ),
    "approved_rerun_failed": (
        "error",
        "Approval {id} recorded, but the run could not be triggered through Airflow: the next run "
        "applies it.",
    ),
    "approved_apply": ("ok", "Approval {id} recorded; applying it now."),
    "approved_apply_refused": (
        "error",
        "Approval {id} recorded, but Airflow refused to apply it now (your login may not trigger runs "
        "of the apply DAG, or has expired): the next run applies it.",
    ),
    "approved_apply_failed": (
        "error",
        "Approval {id} recorded, but Apply now could not be triggered through Airflow: the next run "
        "applies it.",
    ),
    "approved_apply_not_allowed": (
        "error",
        "Approval {id} recorded, but applying it was not allowed: you do not hold the Apply power on "
        "this tenant (ask an administrator). The next run applies it.",
    ),
    "revoked": ("ok", "Approval {id} revoked."),
    "not_pending": ("error", "Approval {id} is no longer pending: nothing changed."),
    "already_pending": (
        "error",
        "Row {id} already has a pending approval for its billing date: revoke that one first.",
    ),
    "not_approvable": (
        "error",
        "Row {id} cannot be approved: only an open change_exceeds_limit or no_live_addition row with "
        "known quantities can.",
    ),
    "pick_agreement": ("error", "Pick one of the company's agreements for the new addition of row {id}."),
}


class HeldRow(store.QuarantineRow):
    """An open held row as the approvals page lists it."""

    pending: store.ApprovalRow | None  # the approval of its billing date and key waiting for a run
    proposal: Proposal | None  # what it offers to approve
    four_eyes: str | None  # why the four-eyes rule refuses this reviewer, if it does


# -- pages ------------------------------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
def approvals_page(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    state = request.query_params.get("status") or "pending"
    if state not in STATUSES:
        raise bad_request(f"status must be one of {', '.join(STATUSES)}")
    day = _optional_date(request.query_params.get("billing_date"))
    t = tenant.id
    rows = store.list_approvals(
        eng, billing_date=day, status=None if state == "all" else state, limit=LIST_LIMIT, tenant=t
    )
    rows.sort(key=lambda a: (a["status"] != "pending", -a["id"]))
    pending = {
        (a["billing_date"], a["sync_key"]): a for a in store.list_approvals(eng, status="pending", tenant=t)
    }
    # What each offers: the quantity aimed for (an override's, when one decides the key).
    held: list[HeldRow] = [
        {
            **q,
            "pending": pending.get((q["billing_date"], q["sync_key"])),
            "proposal": _proposal(q),
            "four_eyes": None,
        }
        for reason in APPROVABLE
        for q in store.list_quarantine(
            eng, status="open", reason_code=reason, billing_date=day, limit=HELD_LIMIT, tenant=t
        )
    ]
    held.sort(key=lambda q: (q["billing_date"], q["sync_key"]), reverse=True)
    offered = [q["proposal"] for q in held if q["proposal"] is not None]
    refused = _four_eyes(eng, tenant, reviewer, offered) if reviewer.may("approvals") else {}
    for q in held:
        q["four_eyes"] = refused.get(_key(q["proposal"])) if q["proposal"] is not None else None
    page = context.render(
        request,
        reviewer,
        "approvals.html",
        approvals=rows,
        held=held,
        state=state,
        statuses=STATUSES,
        billing_date=day,
        companies=staging.company_names(eng, tenant=t),
        notice=_named(_notice(request), request, eng, t),
        rerun_notice=airflow_runs.notice(request),
    )
    return picker.allow_fetch(page)  # the live progress of a run (static/live.js)


@router.get("/new", response_class=HTMLResponse)
def approval_form(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    row = _row(eng, parse_id(request.query_params.get("row") or "", "row"), tenant)
    return _form_page(request, reviewer, context, eng, tenant, row, _notice(request))


def _form_page(
    request: Request,
    reviewer: Reviewer,
    context: ReviewContext,
    eng: Engine,
    tenant: PageTenant,
    row: store.QuarantineRow,
    notice: dict[str, str] | None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    """The approve form of the row as it is now: what it shows is also what its hidden fields say
    was seen (`seen.shown`), and the four-eyes rule's reason when it refuses this reviewer."""
    offer = _offer(eng, row)
    blocked = None
    if offer is not None and reviewer.may("approvals"):
        blocked = _four_eyes(eng, tenant, reviewer, [offer["approval"]]).get(_key(offer["approval"]))
    return context.render(
        request,
        reviewer,
        "approval_new.html",
        status_code=status_code,
        row=row,
        offer=offer,
        seen=None if offer is None else seen.shown(row, offer),
        four_eyes=blocked,
        companies=staging.company_names(eng, tenant=tenant.id),
        pending=store.list_approvals(
            eng,
            billing_date=row["billing_date"],
            sync_key=row["sync_key"],
            status="pending",
            tenant=tenant.id,
        ),
        notice=notice,
    )


# -- actions ----------------------------------------------------------------------------------------
@router.post("")
def approve(
    request: Request,
    reviewer: ApprovalsDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    shown: Annotated[dict[str, str], Depends(seen.submitted)],  # what the form showed
    row_id: Annotated[str, Form()],
    agreement_id: Annotated[str, Form()] = "",
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
    rerun: Annotated[str, Form()] = "",
) -> Response:
    ident = parse_id(row_id, "row_id")
    agreement = optional_id(agreement_id, "agreement_id")
    row = _row(eng, ident, tenant)
    offer = _offer(eng, row)
    if offer is not None and not seen.matches(shown, row, offer):
        # A run refreshed the row since the form was rendered (or the POST names no numbers): what
        # the person saw is not what would be approved. Nothing is recorded; the form, as it is now.
        text = (
            f"Row {ident}: {seen.REFUSAL}. The form below shows them as they are now; nothing was recorded."
        )
        notice = {"kind": "error", "text": text}
        return _form_page(request, reviewer, context, eng, tenant, row, notice, status.HTTP_409_CONFLICT)
    if offer is not None:
        refused = _four_eyes(eng, tenant, reviewer, [offer["approval"]]).get(_key(offer["approval"]))
        if refused is not None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, refused)
    outcome, approval = record_approval(eng, row, agreement, note.strip(), reviewer)
    if approval is None:
        return _back_to_form(request, context, ident, outcome)
    query: dict[str, QueryValue] = {
        "approval": outcome,
        "id": approval["id"],
        "billing_date": row["billing_date"].isoformat(),
    }
    if rerun in ("1", "apply") and not reviewer.may("apply"):
        return context.redirect(request, "/approvals", {**query, "approval": "approved_apply_not_allowed"})
    if rerun == "apply":
        scope = airflow_runs.Scope(row["billing_date"], companies=_companies_of(row, approval))
        what = f"approval #{approval['id']}"
        code, run = _apply(request, api, scope, what, tenants.apply_dag_id_of(tenant.id))
        query.update(approval=code)
        if run is not None:
            query.update(airflow_runs.outcome_query(run, row["billing_date"], applying=True))
        return context.redirect(request, "/approvals", query)
    if rerun != "1":
        return context.redirect(request, "/approvals", query)
    code, run = _rerun(request, api, row["billing_date"], tenant.dag_id)
    query.update(approval=code)
    if run is not None:
        query.update(airflow_runs.outcome_query(run, row["billing_date"]))
    return context.redirect(request, "/approvals", query)


@router.post("/{approval_id}/revoke")
def revoke(
    request: Request,
    approval_id: str,
    reviewer: ApprovalsDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
) -> RedirectResponse:
    ident = parse_id(approval_id, "approval id")
    found = store.get_approval(eng, ident, tenant=tenant.id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No approval {ident}")
    said = f"Revoked by {reviewer.name} (id {reviewer.user_id})" + (
        f": {note.strip()}" if note.strip() else ""
    )
    earlier = (found.get("note") or "").strip()
    try:
        store.set_approval_status(
            eng,
            ident,
            "revoked",
            tenant=tenant.id,
            note=f"{earlier}\n{said}" if earlier else said,
            user=reviewer.name,  # the decision history's who and why (store.decisions)
            user_id=reviewer.user_id,
            reason=note.strip() or None,
        )
    except store.ApprovalConflict:
        return context.redirect(request, "/approvals", {"approval": "not_pending", "id": ident})
    return context.redirect(request, "/approvals", {"approval": "revoked", "id": ident})


def record_approval(
    eng: Engine, row: store.QuarantineRow, agreement_id: int | None, note: str, reviewer: Reviewer
) -> tuple[str, store.ApprovalRow | None]:
    """(message code, the new approval or None): exactly what the row offers, by this reviewer, for
    the row's tenant."""
    offer = _offer(eng, row)
    if offer is None:
        return "not_approvable", None
    fields: Proposal = {**offer["approval"]}
    if fields["kind"] == "create_addition":
        if agreement_id is None or agreement_id not in {a["agreement_id"] for a in offer["agreements"]}:
            return "pick_agreement", None
        fields["agreement_id"] = agreement_id
    try:
        approval = store.add_approval(
            eng,
            billing_date=row["billing_date"],
            sync_key=row["sync_key"],
            user=reviewer.name,
            user_id=reviewer.user_id,
            note=note or None,
            quarantine_id=row["id"],
            tenant=row["tenant"],
            **fields,
        )
    except store.ApprovalConflict:
        return "already_pending", None
    return "approved", approval


# -- what a row offers ------------------------------------------------------------------------------
def _proposal(row: store.QuarantineRow) -> Proposal | None:
    """What the row offers to approve (`reconcile.proposal` of its payload), None: nothing."""
    payload = row["payload"] if isinstance(row["payload"], dict) else {}
    return reconcile.proposal(payload, row["reason_code"])


def _offer(eng: Engine, row: store.QuarantineRow) -> Offer | None:
    """What the open row lets a person approve: the approval's fields and, for a new addition, the
    company's live agreements and the catalog item's price as its run read them. None: nothing."""
    if row["status"] != "open" or row["reason_code"] not in APPROVABLE:
        return None
    payload = row["payload"] if isinstance(row["payload"], dict) else {}
    approval = _proposal(row)
    if approval is None:
        return None
    offer: Offer = {"approval": approval, "agreements": [], "price": None, "amount": None}
    if approval["kind"] == "create_addition":
        offer["agreements"] = _agreements(eng, row, approval["cw_company_id"])
        offer["preselect"] = _preselect(offer["agreements"])
        price = _catalog_price(eng, row, payload.get("catalog_identifier"))
        offer["price"] = price
        offer["amount"] = None if price is None else price * approval["to_quantity"]
    return offer


def _agreements(eng: Engine, row: store.QuarantineRow, company_id: int) -> list[Agreement]:
    """The company's live agreements on the row's billing date, as the row's run read them, each
    with the Huntress products (catalog identifiers) of its live additions (`carries`)."""
    run = store.get_run(eng, row["run_id"], tenant=row["tenant"])
    settings = (run["settings"] if run else None) or {}
    types = settings.get("agreement_types") or ()
    frame = store.read_frame(eng, row["run_id"], "agreements", tenant=row["tenant"])
    live = reconcile.live_agreements(frame, company_id, row["billing_date"], types)
    carries = _huntress_additions(eng, row, company_id, types, settings.get("products"))
    return [
        {
            "agreement_id": int(a["agreement_id"]),
            "name": None if pd.isna(a["name"]) else str(a["name"]),
            "type": None if pd.isna(a["type"]) else str(a["type"]),
            "carries": carries.get(int(a["agreement_id"]), []),
        }
        for a in live.to_dict("records")
    ]


def _huntress_additions(
    eng: Engine, row: store.QuarantineRow, company_id: int, types: Any, products: Any
) -> dict[int, list[str]]:
    """The company's live additions of mapped Huntress products (the run's configured catalog
    identifiers, else the default ones) as the row's run staged them: agreement id → identifiers."""
    # A product may keep several catalog items in step (a list value): each is one of ours.
    configured = products if isinstance(products, dict) and products else Settings().products
    mapped = set(catalog_identifiers(configured))
    frame = store.read_frame(eng, row["run_id"], "additions", tenant=row["tenant"])
    if frame.empty:
        return {}
    live = reconcile.live_additions(frame, row["billing_date"], types)
    ours = live.loc[
        live["company_id"].eq(company_id).fillna(False).to_numpy(dtype=bool)
        & live["product_identifier"].isin(mapped).to_numpy(dtype=bool)
    ].dropna(subset=["agreement_id"])
    found: dict[int, list[str]] = {}
    for agreement, identifier in zip(ours["agreement_id"], ours["product_identifier"], strict=True):
        found.setdefault(int(agreement), []).append(str(identifier))
    return {k: sorted(set(v)) for k, v in found.items()}


def _preselect(agreements: list[Agreement]) -> int | None:
    """The agreement a new addition goes on unless the person picks another: the only one, or the
    one agreement that already carries the company's Huntress additions; None when that is not
    one agreement (the person picks)."""
    if len(agreements) == 1:
        return int(agreements[0]["agreement_id"])
    carrying = [a["agreement_id"] for a in agreements if a["carries"]]
    return int(carrying[0]) if len(carrying) == 1 else None


def _catalog_price(eng: Engine, row: store.QuarantineRow, identifier: object) -> float | None:
    """The catalog item's price as the row's run read it (`catalog` frame), or None when unknown."""
    if not isinstance(identifier, str) or "catalog" not in frames.SCHEMAS:
        return None
    catalog = store.read_frame(eng, row["run_id"], "catalog", tenant=row["tenant"])
    prices = catalog.loc[catalog["identifier"] == identifier, "price"].dropna()
    return float(prices.iloc[0]) if len(prices) else None


def _row(eng: Engine, row_id: int, tenant: PageTenant) -> store.QuarantineRow:
    row = tenant_row(eng, row_id, tenant)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"No quarantine row {row_id}")
    return row


# -- four eyes -------------------------------------------------------------------------------------
def _key(approval: Proposal) -> tuple[int, str]:
    return int(approval["cw_company_id"]), str(approval["product"])


def _four_eyes(
    eng: Engine, tenant: PageTenant, reviewer: Reviewer, approvals: list[Proposal]
) -> dict[tuple[int, str], str]:
    """The four-eyes rule's refusals of these approvals (`four_eyes.refusals`), by (company, product):
    what an approval or a new addition releases was set up by whoever mapped an organization to the
    company and whoever added the active override on the key."""
    what = "approve it (an approval releases what the held key is billed)"
    return four_eyes.refusals(eng, tenant, reviewer, map(_key, approvals), what=what)


# -- re-run -----------------------------------------------------------------------------------------
def _rerun(
    request: Request, api: str, billing_date: date, dag_id: str
) -> tuple[str, airflow_runs.Triggered | None]:
    """Trigger a run of the billing date as the signed-in user: (message code, the run or None)."""
    token = airflow_runs.user_token(request)
    if token is None:
        return "approved_rerun_refused", None
    try:
        return "approved_rerun", airflow_runs.trigger_billing_run(api, token, billing_date, dag_id=dag_id)
    except airflow_runs.RunExists:
        return "approved_rerun_exists", None
    except HTTPException as exc:
        refused = exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)
        return ("approved_rerun_refused" if refused else "approved_rerun_failed"), None


def _apply(
    request: Request, api: str, scope: airflow_runs.Scope, what: str, dag_id: str
) -> tuple[str, airflow_runs.Triggered | None]:
    """Apply now: trigger the apply DAG for exactly `scope` as the user (message code, the run)."""
    token = airflow_runs.user_token(request)
    if token is None:
        return "approved_apply_refused", None
    try:
        return "approved_apply", airflow_runs.trigger_apply_run(api, token, scope, what, dag_id=dag_id)
    except airflow_runs.RunExists:
        return "approved_rerun_exists", None
    except HTTPException as exc:
        refused = exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)
        return ("approved_apply_refused" if refused else "approved_apply_failed"), None


def _companies_of(row: store.QuarantineRow, approval: store.ApprovalRow) -> tuple[int, ...]:
    """The company an approval touches: its own, else its held row's."""
    company = approval["cw_company_id"] or row["cw_company_id"]
    return (int(company),) if company is not None else ()


# -- small helpers ----------------------------------------------------------------------------------
def _notice(request: Request) -> dict[str, str] | None:
    code = request.query_params.get("approval", "")
    if code not in MESSAGES:
        return None
    ident = request.query_params.get("id", "")
    kind, text = MESSAGES[code]
    return {"kind": kind, "text": text.format(id=ident if is_id(ident) else "")}


def _named(
    notice: dict[str, str] | None, request: Request, eng: Engine, tenant: str
) -> dict[str, str] | None:
    """The notice of an approval naming the company (and product) it is for, not only its id."""
    ident = request.query_params.get("id", "")
    if notice is None or not is_id(ident):
        return notice
    about = flash.about_approval(eng, int(ident), tenant=tenant)
    return {**notice, "text": f"{notice['text']} ({about})"} if about else notice


def _back_to_form(request: Request, context: ReviewContext, row_id: int, code: str) -> RedirectResponse:
    return context.redirect(request, "/approvals/new", {"row": row_id, "approval": code, "id": row_id})


def _optional_date(value: str | None) -> date | None:
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != 10:
        raise bad_request("billing_date must be a date, YYYY-MM-DD")
    return day
