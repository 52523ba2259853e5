"""Billing runs: the list, one run, its report files, and the report link every alert carries."""

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine

from billing_sync import store
from billing_sync.names import DAG_ID
from billing_sync.report import REPORT_FILE
from billing_sync.review import data
from billing_sync.review.deps import ContextDep, EngineDep, ReaderDep
from billing_sync.review.inputs import check_run_id, parse_page
from billing_sync.review.pages import ReviewContext

router = APIRouter(prefix="/runs")


@router.get("", response_class=HTMLResponse)
def runs_list(request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep) -> HTMLResponse:
    page = parse_page(request.query_params.get("page"))
    size = context.runs_page_size()
    runs = store.list_runs(eng, limit=size + 1, offset=(page - 1) * size)
    root = context.root()
    items = [_run_view(request, context, r, root) for r in runs[:size]]
    return context.render(request, reviewer, "runs.html", runs=items, page=page, has_next=len(runs) > size)


@router.get("/{run_id}", response_class=HTMLResponse)
def run_detail(
    request: Request, run_id: str, reviewer: ReaderDep, context: ContextDep, eng: EngineDep
) -> HTMLResponse:
    run = _run(eng, run_id)
    view = _run_view(request, context, run, context.root())
    open_rows = store.count_quarantine(eng, run_id=run_id, status="open")
    return context.render(request, reviewer, "run.html", run=view, open_rows=open_rows)


@router.get("/{run_id}/report")
def run_report(
    request: Request, run_id: str, _: ReaderDep, context: ContextDep, eng: EngineDep
) -> RedirectResponse:
    """The "report page" link of the run's alerts (notify.report_page_url): its report.html
    once the run has recorded one, else the run's page."""
    run = _run(eng, run_id)
    base = f"/runs/{quote(run_id, safe='')}"
    if data.report_file(data.report_dir(run, context.root()), REPORT_FILE) is not None:
        base += f"/files/{REPORT_FILE}"
    return context.redirect(request, base)


@router.get("/{run_id}/files/{name}")
def run_file(run_id: str, name: str, _: ReaderDep, context: ContextDep, eng: EngineDep) -> Response:
    run = store.get_run(eng, check_run_id(run_id))
    path = data.report_file(data.report_dir(run, context.root()), name) if run else None
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report file")
    return FileResponse(path, media_type=data.REPORT_TYPES[path.suffix.lower()], headers=_file_headers(path))


def _run(eng: Engine, run_id: str) -> dict[str, Any]:
    run = store.get_run(eng, check_run_id(run_id))
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


def _run_view(request: Request, context: ReviewContext, run: dict[str, Any], root: Path) -> dict[str, Any]:
    counts = run.get("counts") or {}
    directory = data.report_dir(run, root)
    base = f"/runs/{quote(run['run_id'], safe='')}"
    files = [
        {**f, "url": context.url(request, f"{base}/files/{quote(f['name'], safe='')}")}
        for f in data.report_files(directory)
    ]
    return {
        **run,
        "outcome_counts": {k: v for k, v in counts.items() if k != "total" and v},
        "total": counts.get("total"),
        "files": files,
        "report_missing": bool(run.get("report_path")) and directory is None,
        "url": context.url(request, base),
        "dag_run_url": context.airflow_url(request, f"/dags/{DAG_ID}{base}"),
    }
