"""Standing overrides (`billing_overrides`): the list, adding one, retiring one.

An override changes what a customer is billed, so adding and retiring one take the ``overrides``
power (`OverridesDep`; by default what changing who pays takes, docs/ui.md "Auth"); reading the list
takes a reader. Who added a
rule is recorded in `created_by` / `created_by_id`, who retired it in its note (the table has no
column for it). Rules apply from the next run of the DAG (docs/contract.md §3). Every rule is the page's
tenant's (`deps.TenantDep`), checked against that tenant's newest run.

    GET  /overrides                    active and retired overrides, and the form to add one
    POST /overrides                    add (company, product, rule, quantity, note)

The company is picked by name (issue 20 §3): the field takes a name, "Name #id" (what the picker's
type-ahead fills in) or an id, and the server resolves it against the tenant's newest run; a picker
match without script posts ``company_id``. A value the page cannot take (an unknown or ambiguous
company, a bad product, rule or quantity) renders the page again, 400, with the message beside its
field and everything typed kept, and the companies matching what was typed offered under the field.
    POST /overrides/{override_id}/retire
"""

import unicodedata
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.config import Settings
from billing_sync.review import airflow_runs, apply_now, four_eyes, picker
from billing_sync.review.deps import ContextDep, EngineDep, OverridesDep, ReaderDep, TenantDep
from billing_sync.review.inputs import NOTE_MAX, SEARCH_MAX, QueryValue, is_id, parse_company, parse_id
from billing_sync.review.pages import ReviewContext
from billing_sync.review.queries.companies import CompanySearch, search_companies
from billing_sync.review.queries.staging import Company
from billing_sync.review.security import Reviewer
from billing_sync.review.tenancy import PageTenant

router = APIRouter(prefix="/overrides")
QUANTITY_MAX = 10_000_000  # as many units as a usage count may carry (frames.MAX_USAGE)
# The add form's fields a refusal is shown beside (the rest are the page's notice).
FIELD_OF = {
    "override_bad_company": "company",
    "override_unknown_company": "company",
    "override_bad_product": "product",
    "override_bad_rule": "rule",
    "override_bad_quantity": "quantity",
}
RULE_HELP = {
    "minimum": "bill at least this many (a contract minimum); more when Huntress counts more",
    "fixed": "bill exactly this many, whatever Huntress counts",
    "exclude": "never touch this company and product: the sync leaves the addition as it is",
}
# The page's own messages, picked by code from the redirect (never echoed from it). Their codes are
# not among pages.MESSAGES, so the shared banner stays empty and the page shows these.
NOTICES = {
    "override_added": ("ok", "Override {id} added; it applies from the next run."),
    "override_retired": ("ok", "Override {id} retired; the next run bills from Huntress's count again."),
    "override_conflict": (
        "error",
        "That company and product already has an active override: retire it first.",
    ),
    "override_not_found": ("error", "There is no override {id}."),
    "override_bad_company": ("error", "Choose a company by its numeric id."),
    "override_unknown_company": (
        "error",
        "That company id is not among the ConnectWise companies of the newest run.",
    ),
    "override_no_companies": (
        "error",
        "No run has read the ConnectWise companies yet: run the DAG (a dry run will do) first.",
    ),
    "override_bad_product": ("error", "Choose one of the configured products."),
    "override_bad_rule": ("error", "Choose minimum, fixed or exclude."),
    "override_bad_quantity": (
        "error",
        f"minimum and fixed need a whole number of units (0 to {QUANTITY_MAX:,}); exclude takes none.",
    ),
}


@router.get("", response_class=HTMLResponse)
def overrides_page(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    return _page(
        request, reviewer, context, eng, tenant, _notice(request), form=_prefill(request, eng, tenant)
    )


PREFILLED = ("product", "rule", "quantity", "note")


def _prefill(request: Request, eng: Engine, tenant: PageTenant) -> dict[str, str]:
    """The add form filled in by the link that led here (a quarantine card's *Add an override…* or
    *Adjust…*): ``company`` (an id, shown as "Name #id"), product, rule, quantity, note. Only fills
    the fields: nothing is added until the person submits, and every value is checked then."""
    query = request.query_params
    form = {f: _printable(query.get(f, "")) for f in PREFILLED if query.get(f)}
    raw = query.get("company", "")
    if is_id(raw):
        name = next((c["name"] for c in _companies(eng, tenant.id) or [] if c["id"] == int(raw)), "")
        form["company"] = f"{name} #{int(raw)}" if name else str(int(raw))
    return form


class NamedOverride(store.OverrideRow):
    company_name: str | None  # as the newest run staged it (None: not staged)


def _page(
    request: Request,
    reviewer: Reviewer,
    context: ReviewContext,
    eng: Engine,
    tenant: PageTenant,
    notice: dict[str, str] | None,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    search: CompanySearch | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    """The page; after a refused add, with what was typed (`form`), the refusal beside its field
    (`errors`) and the companies matching the typed company (`search`)."""
    companies = _companies(eng, tenant.id)
    names = {c["id"]: c["name"] for c in companies or []}
    rows: list[NamedOverride] = [
        {**r, "company_name": names.get(r["cw_company_id"])}
        for r in store.list_overrides(eng, tenant=tenant.id, active=None)
    ]
    page = context.render(
        request,
        reviewer,
        "overrides.html",
        status_code=status_code,
        form=form or {},
        errors=errors or {},
        search=search,
        active_rows=[r for r in rows if r["active"]],
        retired_rows=[r for r in reversed(rows) if not r["active"]],
        companies=companies or [],
        products=_products(eng, tenant.id),
        rules=RULE_HELP,
        notice=notice,
        note_max=NOTE_MAX,
        rerun_notice=airflow_runs.notice(request),
    )
    return picker.allow_fetch(page)  # Apply now's live progress (static/live.js)


@router.post("")
def add_override(
    request: Request,
    reviewer: OverridesDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
    company_id: Annotated[str, Form()] = "",  # a picker match (its button)
    company: Annotated[str, Form()] = "",  # what was typed: a name, "Name #id" or an id
    product: Annotated[str, Form(max_length=100)] = "",
    rule: Annotated[str, Form(max_length=20)] = "",
    quantity: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=NOTE_MAX)] = "",
    apply: Annotated[str, Form(alias=apply_now.FORM_FIELD)] = "",
) -> Response:
    typed = _printable(company_id.strip() or company.strip())
    companies = _companies(eng, tenant.id)
    picked, company_error = picker.resolve(typed, companies)
    form = {"company": typed, "product": product, "rule": rule, "quantity": quantity, "note": note}
    if company_error is not None:
        search = search_companies(eng, _query(typed), tenant=tenant.id)
        errors = {"company": company_error}
        return _again(request, reviewer, context, eng, tenant, form, errors, search)
    if picked is not None:  # the four-eyes rule: not on a held key of a company this user mapped
        refused = four_eyes.override_refusal(eng, tenant, reviewer, picked, product)
        if refused is not None:
            raise HTTPException(status.HTTP_403_FORBIDDEN, refused)
    company_text = "" if picked is None else str(picked)
    outcome, ident = apply_override(
        eng, company_text, product, rule, quantity, note.strip(), reviewer, tenant=tenant.id
    )
    if outcome in FIELD_OF:
        errors = {FIELD_OF[outcome]: NOTICES[outcome][1]}
        return _again(request, reviewer, context, eng, tenant, form, errors, None)
    day = apply_now.staged_billing_date(eng, tenant=tenant.id) if apply_now.wanted(apply) else None
    applied: dict[str, str] = {}
    if NOTICES[outcome][0] != "error" and picked is not None and day is not None:
        scope = airflow_runs.Scope(day, companies=(picked,))
        applied = apply_now.trigger(request, api, tenant.id, scope, f"override #{ident}", reviewer=reviewer)
    return _back(request, context, outcome, ident, applied)


@router.post("/{override_id}/retire")
def retire_override(
    request: Request,
    override_id: str,
    reviewer: OverridesDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
) -> RedirectResponse:
    ident = parse_id(override_id, "override_id")
    # Only this tenant's rules are this page's to end (another tenant's is "not found", as unseen).
    if not any(r["id"] == ident for r in store.list_overrides(eng, tenant=tenant.id, active=None)):
        return _back(request, context, "override_not_found", ident)
    store.retire_override(eng, ident, tenant=tenant.id, user=reviewer.name, user_id=reviewer.user_id)
    return _back(request, context, "override_retired", ident)


def apply_override(
    eng: Engine,
    company_id: str,
    product: str,
    rule: str,
    quantity: str,
    note: str,
    reviewer: Reviewer,
    *,
    tenant: str,
) -> tuple[str, int]:
    """Check every field against the tenant's newest run, then add the override; (message code,
    the id it is about)."""
    company = parse_company(company_id)
    if company is None:
        return "override_bad_company", 0
    companies = _companies(eng, tenant)
    if companies is None:
        return "override_no_companies", 0
    if company not in {c["id"] for c in companies}:
        return "override_unknown_company", 0
    if product not in _products(eng, tenant):
        return "override_bad_product", 0
    if rule not in RULE_HELP:
        return "override_bad_rule", 0
    units = _units(quantity)
    if (rule == "exclude") != (units is None) or (units is not None and units < 0):
        return "override_bad_quantity", 0
    try:
        row = store.add_override(
            eng,
            cw_company_id=company,
            product=product,
            rule=rule,
            quantity=units,
            note=note or None,
            user=reviewer.name,
            user_id=reviewer.user_id,
            tenant=tenant,
        )
    except store.OverrideConflict:
        return "override_conflict", 0
    return "override_added", int(row["id"])


def _again(
    request: Request,
    reviewer: Reviewer,
    context: ReviewContext,
    eng: Engine,
    tenant: PageTenant,
    form: dict[str, str],
    errors: dict[str, str],
    search: CompanySearch | None,
) -> HTMLResponse:
    """The page again after a refused add: 400, the form as typed, the refusal beside its field."""
    page = _page(
        request,
        reviewer,
        context,
        eng,
        tenant,
        None,
        form=form,
        errors=errors,
        search=search,
        status_code=status.HTTP_400_BAD_REQUEST,
    )
    return picker.allow_fetch(page)


def _printable(raw: str) -> str:
    """What was typed, as the page may show it again: no control characters, at most SEARCH_MAX."""
    return "".join(c for c in raw if unicodedata.category(c) not in ("Cc", "Cs"))[:SEARCH_MAX]


def _query(typed: str) -> str:
    """The search for the matches offered under the field: the typed name without a "#id"."""
    return picker.PICKED.sub("", typed).strip()


def _units(raw: str) -> int | None:
    """A whole number of units; None when blank; -1 (refused) when anything else."""
    text = raw.strip()
    if not text:
        return None
    if not is_id(text) or int(text) > QUANTITY_MAX:
        return -1
    return int(text)


def _companies(eng: Engine, tenant: str) -> list[Company] | None:
    """The ConnectWise companies of the tenant's newest run that read them (id, name), by name; None
    when no run has."""
    run_id = store.newest_staged_run(eng, "companies", tenant=tenant)
    if run_id is None:
        return None
    frame = store.read_frame(eng, run_id, "companies", tenant=tenant).dropna(subset=["company_id"])
    companies = {int(i): str(n) for i, n in zip(frame["company_id"], frame["name"].fillna(""), strict=True)}
    return [
        {"id": i, "name": n} for i, n in sorted(companies.items(), key=lambda kv: (kv[1].casefold(), kv[0]))
    ]


def _products(eng: Engine, tenant: str) -> list[str]:
    """The products the tenant's newest run was configured with (else the default ones)."""
    newest = next(iter(store.list_runs(eng, limit=1, tenant=tenant)), None)
    configured = ((newest["settings"] if newest else None) or {}).get("products")
    return sorted(configured) if isinstance(configured, dict) and configured else sorted(Settings().products)


def _notice(request: Request) -> dict[str, str] | None:
    code = request.query_params.get("done") or request.query_params.get("error") or ""
    if code not in NOTICES:
        return None
    kind, text = NOTICES[code]
    ident = request.query_params.get("id", "")
    return {"kind": kind, "text": text.format(id=ident if is_id(ident) else "")}


def _back(
    request: Request, context: ReviewContext, outcome: str, ident: int, extra: dict[str, str] | None = None
) -> RedirectResponse:
    kind = "error" if NOTICES[outcome][0] == "error" else "done"
    query: dict[str, QueryValue] = {kind: outcome, "id": ident or None, **(extra or {})}
    anchor = f"#override-{ident}" if ident and kind == "done" else ""
    return RedirectResponse(context.url(request, "/overrides", query) + anchor, status.HTTP_303_SEE_OTHER)
