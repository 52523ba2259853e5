"""Billing runs: the list, one run, its report files, and the report link every alert carries.

The list is paged (its total shown); its first page and each run's page show charts
(`billing_sync.charts`, each drawn once per what it shows: `chart_cache`): inline `<svg>` that
`charts.sanitize_svg` wrote from an allow-list, so it holds no script, no style attribute and no
reference outside itself, and the pages' CSP stays as strict as it is (no 'unsafe-inline').

Runs are the page's tenant's (`deps.TenantDep`): every tenant's DAG has the same run ids, so a run
id names a run only with its tenant, and the charts and money read that tenant's rows alone.
"""

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypedDict
from urllib.parse import quote

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from billing_sync import charts, money, store, tenants
from billing_sync.chart_cache import SvgCache
from billing_sync.config import Settings, load_settings
from billing_sync.report import REPORT_FILE, MoneyView, money_view
from billing_sync.review import airflow_live, airflow_runs, settings_form, settings_variable
from billing_sync.review.deps import ContextDep, EngineDep, ReaderDep, TenantDep
from billing_sync.review.inputs import check_run_id, parse_page
from billing_sync.review.pages import ReviewContext
from billing_sync.review.queries import reports
from billing_sync.review.queries import runs as queries
from billing_sync.review.tenancy import PageTenant


class FileLink(reports.ReportFile):
    url: str


class RunView(store.RunRecord):
    """A run as the runs pages show it: its record, its money and outcome in words, its files."""

    recovered: str  # the money it recovered, signed ("" when it recorded none)
    held_then: str  # the money it held when it ran
    outcome_counts: dict[str, int]  # keys written by outcome, the empty ones left out
    total: int | None
    files: list[FileLink]
    report_missing: bool  # it recorded a report directory that is not there (or not servable)
    url: str
    dag_run_url: str
    airflow_state: str  # what Airflow says of it ("" unknown): the list reads it beside `status`


class AirflowRun(TypedDict):
    """A run of the tenant's DAGs as Airflow has it, with its billing_runs record if any."""

    dag: str
    kind: str  # monthly | apply
    run_id: str
    state: str
    at: str
    ended: str
    airflow_url: str
    record: RunView | None


router = APIRouter(prefix="/runs")
log = logging.getLogger(__name__)
AIRFLOW_RUNS = 50  # newest runs of each DAG listed as Airflow has them
HISTORY_RUNS = 500  # newest runs read for the chart over billing dates (charts.HISTORY_DATES of them)
# Charts kept drawn (`chart_cache`): a runs list and a page per run each, for many tenants and runs,
# and no more than a few MiB of SVG in all.
CHARTS_KEPT, CHART_BYTES_KEPT, CHART_CACHE = 128, 16 * 2**20, "billing_chart_cache"
_CACHE_LOCK = threading.Lock()
CHART_FAILED = "The chart could not be drawn (see the API server log); the tables hold the numbers."


@router.get("", response_class=HTMLResponse)
def runs_list(
    request: Request,
    reviewer: ReaderDep,
    context: ContextDep,
    eng: EngineDep,
    tenant: TenantDep,
    api: Annotated[str, Depends(airflow_runs.api_base)],
) -> HTMLResponse:
    page = parse_page(request.query_params.get("page"))
    size = context.runs_page_size()
    total = queries.count_runs(eng, tenant=tenant.id)
    runs = store.list_runs(eng, limit=size, offset=(page - 1) * size, tenant=tenant.id)
    root = context.root()
    items = [_run_view(request, context, r, root, tenant) for r in runs]
    in_airflow, airflow_error = _in_airflow(request, context, eng, tenant, api) if page == 1 else ([], None)
    states = {(r["dag"], r["run_id"]): r["state"] for r in in_airflow}
    for item in items:  # Airflow's word on a run the record still calls running (it failed, or was stopped)
        dag = tenant.dag_id if item.get("scope") is None else tenants.apply_dag_id_of(tenant.id)
        item["airflow_state"] = states.get((dag, item["run_id"]), "")
    chart, chart_error = _history_chart(eng, tenant.id, chart_cache(request)) if page == 1 else (None, None)
    newest = next((r for r in items if queries.recorded_money(r)), None) if page == 1 else None
    return context.render(
        request,
        reviewer,
        "runs.html",
        runs=items,
        page=page,
        pages=max(1, -(-total // size)),
        total=total,
        chart=chart,
        chart_error=chart_error,
        money=_money(eng, newest) if newest else None,
        money_run=newest,
        in_airflow=in_airflow,
        airflow_error=airflow_error,
    )


def _in_airflow(
    request: Request, context: ReviewContext, eng: Engine, tenant: PageTenant, api: str
) -> tuple[list[AirflowRun], str | None]:
    """Every run of the tenant's two DAGs (monthly and apply) as Airflow has them, asked as the user,
    newest first, each joined with its billing_runs row by run id: ([], a sentence) when Airflow
    cannot be asked (no login, refused, unreachable)."""
    token = airflow_runs.user_token(request)
    if token is None:
        return [], "Sign in to Airflow to see its runs here."
    recorded = {r["run_id"]: r for r in store.list_runs(eng, limit=HISTORY_RUNS, tenant=tenant.id)}
    found: list[AirflowRun] = []
    for kind, dag in (("monthly", tenant.dag_id), ("apply", tenants.apply_dag_id_of(tenant.id))):
        try:
            runs = airflow_live.list_runs(api, token, dag, AIRFLOW_RUNS)
        except HTTPException as exc:
            if exc.status_code == status.HTTP_404_NOT_FOUND:  # that DAG is not deployed
                continue
            return [], f"Airflow's runs could not be read: {exc.detail}"
        for r in runs:
            run_id = str(r.get("dag_run_id") or "")
            record = recorded.get(run_id)
            path = f"/dags/{quote(dag, safe='')}/runs/{quote(run_id, safe='')}"
            found.append(
                {
                    "dag": dag,
                    "kind": kind,
                    "run_id": run_id,
                    "state": str(r.get("state") or ""),
                    "at": str(r.get("start_date") or r.get("run_after") or r.get("logical_date") or ""),
                    "ended": str(r.get("end_date") or ""),
                    "airflow_url": context.airflow_url(request, path),
                    "record": _run_view(request, context, record, context.root(), tenant) if record else None,
                }
            )
    found.sort(key=lambda r: r["at"], reverse=True)
    return found, None


@router.get("/{run_id}", response_class=HTMLResponse)
def run_detail(
    request: Request, run_id: str, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    run = _run(eng, run_id, tenant.id)
    view = _run_view(request, context, run, context.root(), tenant)
    open_rows = store.count_quarantine(eng, run_id=run_id, status="open", tenant=tenant.id)
    chart, chart_error = _run_chart(eng, run, tenant.id, chart_cache(request))
    return context.render(
        request,
        reviewer,
        "run.html",
        run=view,
        open_rows=open_rows,
        chart=chart,
        chart_error=chart_error,
        money=_money(eng, run),
        run_settings=settings_form.run_rows(run.get("settings"), _settings_now(tenant)),
    )


def _settings_now(tenant: PageTenant) -> Settings | None:
    """The tenant's settings in force, to mark what changed since a run; None when they cannot be
    read (a former tenant, a broken or unreachable Variable): the run's own table stands alone."""
    if tenant.variable is None:
        return None
    try:
        return load_settings(settings_variable.read(tenant.variable).text)
    except Exception:  # the run page never fails for the comparison; the settings page says why
        log.info("billing review: settings of %s not read for the run page", tenant.id, exc_info=True)
        return None


@router.get("/{run_id}/report")
def run_report(
    request: Request, run_id: str, _: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> RedirectResponse:
    """The "report page" link of the run's alerts (runtime.report_page_url, ``?tenant=<id>`` but for
    the default tenant): its report.html once the run has recorded one, else the run's page."""
    run = _run(eng, run_id, tenant.id)
    base = f"/runs/{quote(run_id, safe='')}"
    if reports.report_file(reports.report_dir(run, context.root()), REPORT_FILE) is not None:
        base += f"/files/{REPORT_FILE}"
    return context.redirect(request, base)


@router.get("/{run_id}/files/{name}")
def run_file(
    run_id: str, name: str, _: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> Response:
    run = store.get_run(eng, check_run_id(run_id), tenant=tenant.id)
    path = reports.report_file(reports.report_dir(run, context.root()), name) if run else None
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report file")
    return FileResponse(
        path, media_type=reports.REPORT_TYPES[path.suffix.lower()], headers=_file_headers(path)
    )


def chart_cache(request: Request) -> SvgCache:
    """The app's drawn charts (one cache per app, made on the first chart it draws)."""
    state = request.app.state
    with _CACHE_LOCK:
        found = getattr(state, CHART_CACHE, None)
        if not isinstance(found, SvgCache):
            found = SvgCache(max_entries=CHARTS_KEPT, max_bytes=CHART_BYTES_KEPT)
            setattr(state, CHART_CACHE, found)
        return found


def _history_chart(eng: Engine, tenant: str, cache: SvgCache) -> tuple[charts.Chart | None, str | None]:
    """The tenant's units per product over the billing dates on record (the newest run of each), and
    the amount held in each billing date's open quarantine rows once those carry one."""

    def draw() -> charts.Chart | None:
        rows = charts.history_rows(store.list_runs(eng, limit=HISTORY_RUNS, tenant=tenant))
        if rows and _held_recorded():  # summed by the database: not every open row read for it
            held = queries.held_amounts(eng, ("billing_date", "product"), status="open", tenant=tenant)
            rows = charts.with_held(rows, held)
        return charts.history_chart(rows, cache)

    return _draw(draw)


def _run_chart(
    eng: Engine, run: store.RunRecord, tenant: str, cache: SvgCache
) -> tuple[charts.Chart | None, str | None]:
    """One run's units per product, and the amount held in its quarantine rows once those carry one."""

    def draw() -> charts.Chart | None:
        rows = charts.product_rows(run["checks"])
        if rows and _held_recorded():
            held = queries.held_amounts(eng, ("product",), run_id=run["run_id"], tenant=tenant)
            rows = charts.with_held(rows, {k[0]: v for k, v in held.items()})
        return charts.run_chart(rows, cache)

    return _draw(draw)


def _money(eng: Engine, run: store.RunRecord) -> MoneyView | None:
    """The run's money as record_run recorded it, with what is still held now (its open rows)."""
    recorded = queries.recorded_money(run)
    if not recorded:
        return None
    products = (run["settings"] or {}).get("products")
    held = store.held_totals(eng, run_id=run["run_id"], status="open", tenant=run["tenant"])
    return money_view(recorded, products, held)


def _held_recorded() -> bool:
    """Whether quarantine rows carry an amount at stake yet: no query for a column that is not there."""
    return charts.QUARANTINE_AMOUNT in store.quarantine.c


def _draw(draw: Callable[[], charts.Chart | None]) -> tuple[charts.Chart | None, str | None]:
    """(the chart, None), (None, None) without data, or (None, a fixed message) when drawing failed:
    a chart never takes the page down with it."""
    try:
        return draw(), None
    except charts.ChartError:
        log.warning("billing review: chart not drawn", exc_info=True)
        return None, CHART_FAILED


def _run(eng: Engine, run_id: str, tenant: str) -> store.RunRecord:
    run = store.get_run(eng, check_run_id(run_id), tenant=tenant)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No billing run with that id")
    return run


def _file_headers(path: Path) -> dict[str, str]:
    # The report is generated from API data: render it in an opaque origin with no scripts, so even
    # a missed escape in it cannot act as the signed-in user.
    headers = {
        "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }
    if path.suffix.lower() != ".html":
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(path.name)}"
    return headers


def _run_view(
    request: Request, context: ReviewContext, run: store.RunRecord, root: Path, tenant: PageTenant
) -> RunView:
    counts = run["counts"] or {}
    directory = reports.report_dir(run, root)
    base = f"/runs/{quote(run['run_id'], safe='')}"
    files: list[FileLink] = [
        {**f, "url": context.url(request, f"{base}/files/{quote(f['name'], safe='')}")}
        for f in reports.report_files(directory)
    ]
    recorded = queries.recorded_money(run)
    held = recorded.get("held") if recorded else None
    return {
        **run,
        "recovered": money.signed(recorded["recovered"]) if recorded else "",
        "held_then": money.fmt(held.get("amount") if held else None) if recorded else "",
        "outcome_counts": {k: v for k, v in counts.items() if k != "total" and v},
        "total": counts.get("total"),
        "files": files,
        "report_missing": bool(run["report_path"]) and directory is None,
        "url": context.url(request, base),
        "dag_run_url": context.airflow_url(request, f"/dags/{quote(tenant.dag_id, safe='')}{base}"),
        "airflow_state": "",
    }
