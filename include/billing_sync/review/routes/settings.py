"""The tenant's settings page: read, edit, save.

The tenant's settings (issue 21 §2): every setting with its meaning and where its value comes
from; a change previewed as a diff, then saved to the tenant's Variable and recorded as a decision.

    GET  /settings           the settings in force, and the form (editable with the mapping right)
    POST /settings/preview   the form checked by the model the DAG uses: each bad value beside its
                             field, the form kept; else the diff, and the save button
    POST /settings           save what was previewed, if the Variable still holds what the page
                             showed (else "settings changed meanwhile; review again", nothing saved)

Saving takes the `settings` power (`SettingsDep`; by the earlier rule, edit rights on the DAG and
on its Variable); reading takes a reader. The Variable is read and written through Airflow's own backends
(`settings_variable`). A run already going keeps the settings it resolved with (the run page shows
them); the change applies from the next run's `resolve`.
"""

import json
from dataclasses import dataclass
from typing import Any, TypedDict

from fastapi import APIRouter, Request, status
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from billing_sync import store, tenants
from billing_sync.config import POWER_AREAS, Settings, SettingsError, parse_variable
from billing_sync.errors import ConfigError
from billing_sync.review import cw_lists, settings_form, settings_variable
from billing_sync.review.deps import ContextDep, EngineDep, ReaderDep, SettingsDep, TenantDep
from billing_sync.review.inputs import bad_request
from billing_sync.review.pages import ReviewContext
from billing_sync.review.security import Reviewer
from billing_sync.review.tenancy import PageTenant

router = APIRouter(prefix="/settings")
PROPOSED_MAX = 32 * 1024  # the previewed Variable: far more than every setting with long lists
SAVED = "Settings saved. Runs from now on use them; a run already going keeps the settings it started with."


@router.get("", response_class=HTMLResponse)
def settings_page(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    notice = ("ok", SAVED) if request.query_params.get("saved") == "1" else None
    return _page(request, reviewer, context, eng, tenant, notice=notice)


@router.post("/preview", response_class=HTMLResponse)
async def settings_preview(
    request: Request, reviewer: SettingsDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    data = await request.form()
    form = {k: v for k, v in data.items() if isinstance(v, str)}
    # The types' boxes share one name: every ticked one, a line each (as the text field holds them).
    form["agreement_types"] = "\n".join(v for v in data.getlist("agreement_types") if isinstance(v, str))
    return await run_in_threadpool(_preview, request, reviewer, context, eng, tenant, form)


@router.post("", response_class=HTMLResponse)
async def settings_save(
    request: Request, reviewer: SettingsDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> Response:
    form = await request.form()
    proposed, seen = form.get("proposed"), form.get("seen")
    if not isinstance(proposed, str) or not isinstance(seen, str) or len(proposed) > PROPOSED_MAX:
        raise bad_request("Form fields proposed and seen are required: preview the change first")
    return await run_in_threadpool(_save, request, reviewer, context, eng, tenant, proposed, seen)


def _preview(
    request: Request,
    reviewer: Reviewer,
    context: ReviewContext,
    eng: Engine,
    tenant: PageTenant,
    form: dict[str, str],
) -> HTMLResponse:
    state = _state(tenant)
    stored, current, raw = state.stored, state.settings, state.raw
    if stored is None or current is None or stored.outside:  # the page says why
        return _page(request, reviewer, context, eng, tenant, state=state)
    candidate, problems = settings_form.edited(form, current, raw, state.tenant_day)
    if not problems:  # the model's words first; then the catalog's, beside each product
        problems = _refused_items(request, tenant, form, current)
    if problems:
        return _page(request, reviewer, context, eng, tenant, state=state, form=form, errors=problems)
    found = settings_form.changes(current, raw, Settings.of(candidate), candidate)
    if not found:
        notice = ("ok", "Nothing to save: the form holds the settings in force.")
        return _page(request, reviewer, context, eng, tenant, state=state, form=form, notice=notice)
    preview: Preview = {
        "changes": found,
        "proposed": settings_form.variable_text(candidate),
        "seen": stored.fingerprint,
    }
    return _page(request, reviewer, context, eng, tenant, state=state, form=form, preview=preview)


def _save(
    request: Request,
    reviewer: Reviewer,
    context: ReviewContext,
    eng: Engine,
    tenant: PageTenant,
    proposed: str,
    seen: str,
) -> Response:
    state = _state(tenant)
    stored, before = state.stored, state.settings
    if stored is None:  # a former tenant (SettingsDep refuses it first)
        raise bad_request("This tenant has no settings any more")
    try:
        raw = parse_variable(proposed)
        after = Settings.of(raw)
    except ConfigError:  # not what a preview offers: preview again
        raise bad_request("The previewed settings do not validate: preview the change again") from None
    if before is None or stored.fingerprint != seen:  # a broken Variable was never previewed either
        return _stale(request, reviewer, context, eng, tenant)
    found = settings_form.changes(before, state.raw, after, raw)
    if not found:
        return context.redirect(request, "/settings")
    before_values, after_values = settings_form.recorded(before, after, found)
    key = stored.key

    def record() -> None:
        store.record_settings_change(
            eng,
            tenant=tenant.id,
            variable=key,
            user=reviewer.name,
            user_id=reviewer.user_id,
            before=before_values,
            after=after_values,
        )

    try:
        settings_variable.save(key, seen, settings_form.variable_text(raw), record)
    except settings_variable.StaleSettings:
        return _stale(request, reviewer, context, eng, tenant)
    except settings_variable.ReadOnlyVariable as exc:
        notice = ("error", f"Nothing saved: the Variable is set in {exc}, which runs read first.")
        return _page(
            request, reviewer, context, eng, tenant, notice=notice, status_code=status.HTTP_409_CONFLICT
        )
    return context.redirect(request, "/settings", {"saved": "1"})


def _stale(
    request: Request, reviewer: Reviewer, context: ReviewContext, eng: Engine, tenant: PageTenant
) -> HTMLResponse:
    notice = ("error", f"Nothing saved: {settings_variable.STALE}.")
    return _page(request, reviewer, context, eng, tenant, notice=notice, status_code=status.HTTP_409_CONFLICT)


class Preview(TypedDict):
    """A previewed change: what differs, the Variable as it would be saved, and the Variable's
    fingerprint when the page read it (a save refuses if it changed since)."""

    changes: list[settings_form.Change]
    proposed: str
    seen: str


class Offered(TypedDict):
    """What the product and type fields offer (`_offered`)."""

    catalog: list[cw_lists.Item]
    catalog_note: str
    flags: dict[str, list[str]]  # per product, what is wrong with its identifiers
    type_choices: list[cw_lists.Choice] | None  # None: ConnectWise's types could not be read
    types_seen: list[str]
    types_note: str


@dataclass(frozen=True)
class Current:
    """The tenant's Variable as runs read it: where and what it holds, its JSON object, the
    settings (None: a former tenant, or `problems` keep it from being settings), and the tenants
    file's billing day (None in the single-tenant form)."""

    stored: settings_variable.Stored | None
    raw: dict[str, Any]  # the Variable's JSON object, as parse_variable read it
    settings: Settings | None
    problems: dict[str, str]
    tenant_day: int | None


def _state(tenant: PageTenant) -> Current:
    if tenant.variable is None:  # a former tenant: no settings any more
        return Current(None, {}, None, {}, None)
    stored = settings_variable.read(tenant.variable)
    tenant_day = tenants.by_id(tenant.id).billing_day
    raw: dict[str, Any] = {}
    settings, problems = None, {}
    try:
        raw = parse_variable(stored.text)
        settings = Settings.of(raw)
    except SettingsError as exc:
        problems = dict(exc.problems)
    except ConfigError as exc:  # not JSON, or not an object: its message quotes no value
        problems = {"": str(exc)}
    return Current(stored, raw, settings, problems, tenant_day)


def _page(
    request: Request,
    reviewer: Reviewer,
    context: ReviewContext,
    eng: Engine,
    tenant: PageTenant,
    *,
    state: Current | None = None,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    preview: Preview | None = None,
    notice: tuple[str, str] | None = None,
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    state = state or _state(tenant)
    settings: Settings | None = state.settings
    stored = state.stored
    editable = bool(reviewer.may("settings") and tenant.active and settings and stored and not stored.outside)
    form = form if form is not None else (settings_form.form_of(settings) if settings else {})
    products = settings_form.products_offered(settings) if settings else []
    configured = {p: settings_form.identifiers(form.get(f"products.{p}", "")) for p in products}
    # ConnectWise is read only for someone about to edit; the others see the staged items.
    lists = _lists(request, tenant, [i for v in configured.values() for i in v]) if editable else None
    return context.render(
        request,
        reviewer,
        "settings.html",
        status_code=status_code,
        stored=stored,
        rows=settings_form.rows(settings, state.raw, state.tenant_day) if settings else [],
        problems=state.problems,
        form=form,
        errors=errors or {},
        preview=preview,
        notice={"kind": notice[0], "text": notice[1]} if notice else None,
        editable=editable,
        products=products,
        areas=POWER_AREAS,
        tenant_day=state.tenant_day,
        **_offered(eng, tenant.id, lists, configured, form.get("agreement_types", "")),
    )


def _lists(request: Request, tenant: PageTenant, wanted: list[str]) -> cw_lists.Lists:
    conn_id = tenants.by_id(tenant.id).connectwise_conn_id
    return cw_lists.cache_of(request.app.state).get(tenant.id, conn_id, wanted)


def _refused_items(
    request: Request, tenant: PageTenant, form: dict[str, str], current: Settings
) -> dict[str, str]:
    """Each product's newly typed identifiers the catalog lacks or holds inactive, beside its field.
    Identifiers already in force are only flagged (a change elsewhere is not held up by them); an
    unreadable catalog refuses nothing (the page says so)."""
    in_force = current.catalog_items
    typed = {
        p: settings_form.identifiers(form.get(f"products.{p}", ""))
        for p in settings_form.products_offered(current)
    }
    new = {p: [i for i in idents if i not in in_force.get(p, ())] for p, idents in typed.items()}
    if not any(new.values()):
        return {}
    lists = _lists(request, tenant, [i for v in new.values() for i in v])
    found = {f"products.{p}": lists.flags(idents) for p, idents in new.items()}
    return {k: "; ".join(v) for k, v in found.items() if v}


def _offered(
    eng: Engine,
    tenant: str,
    lists: cw_lists.Lists | None,
    configured: dict[str, list[str]],
    types_text: str,
) -> Offered:
    """What the product and type fields offer: ConnectWise's lists when read, else what the newest
    run staged, with the plain reason the connection could not be read."""
    out: Offered = {
        "catalog": [],
        "catalog_note": "",
        "types_note": "",
        "type_choices": None,
        "flags": {},
        "types_seen": [],
    }
    if lists is not None and lists.items is not None:
        out["catalog"] = lists.sorted_items()
        out["flags"] = {p: lists.flags(v) for p, v in configured.items()}
        if not lists.whole:
            out["catalog_note"] = (
                f"The first {lists.read_in_page} items of the catalog are offered; type any other identifier by hand."
            )
    else:
        out["catalog"] = _catalog(eng, tenant)
        if lists is not None:
            out["catalog_note"] = (
                f"Could not read the catalog through {lists.conn_id}: {lists.catalog_problem}; "
                "type identifiers by hand"
                + (" (the items offered are those the newest run read)." if out["catalog"] else ".")
            )
    if lists is not None and lists.types is not None:
        out["type_choices"] = lists.choices(settings_form.lines(types_text))
        out["types_seen"] = []
    else:
        out["types_seen"] = _types_seen(eng, tenant)
        if lists is not None and lists.items is not None:  # else the catalog's note says why
            out["types_note"] = (
                f"Could not read the agreement types through {lists.conn_id}: {lists.types_problem}; "
                "type them by hand, one per line."
            )
    return out


def _catalog(eng: Engine, tenant: str) -> list[cw_lists.Item]:
    """The catalog items the tenant's newest run read (identifier, description, inactive)."""
    run = store.newest_staged_run(eng, "catalog", tenant=tenant)
    if run is None:
        return []
    frame = store.read_frame(eng, run, "catalog", tenant=tenant)
    items = json.loads(frame.to_json(orient="records"))
    found = (
        cw_lists.Item(str(i["identifier"]), str(i.get("description") or ""), bool(i.get("inactive")))
        for i in items
        if i.get("identifier")
    )
    return sorted(found, key=lambda i: i.identifier)


def _types_seen(eng: Engine, tenant: str) -> list[str]:
    """The agreement type names among the agreements the tenant's newest run read."""
    run = store.newest_staged_run(eng, "agreements", tenant=tenant)
    if run is None:
        return []
    frame = store.read_frame(eng, run, "agreements", tenant=tenant)
    return sorted({str(t) for t in frame["type"].dropna()})
