"""The billing review FastAPI app: server-rendered pages over the billing database.

`create_app()` is what the plugin mounts. Tests build it with their own engine and auth
(`create_app(engine=..., auth=ReviewAuth(...), csrf_secret=...)`); in the API server every argument
defaults to the real thing: the `billing_sync_db` connection, Airflow's auth dependencies and
``[api] secret_key``.

Route handlers are plain ``def``: the store is synchronous SQLAlchemy, and FastAPI runs such
handlers in its thread pool instead of blocking the API server's event loop.
"""

# No `from __future__ import annotations` here or in security.py: routes are closures over their
# auth dependencies, and FastAPI can only see `Annotated[..., Depends(reader)]` of a closure when
# the annotation is a real object rather than a string to resolve in module globals.

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Self
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import Depends, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from billing_sync import runtime, store
from billing_sync.names import DAG_ID, REASON_CODES, REASON_HELP
from billing_sync.report import REPORT_FILE
from billing_sync.review import data
from billing_sync.review.security import CSRF_FIELD, Csrf, ReviewAuth, Reviewer, airflow_auth, airflow_secret

TEMPLATES = Path(__file__).with_name("templates")
PAGE_SIZE = 100
RUNS_PAGE_SIZE = 50
NOTE_MAX = 2000
QUARANTINE_ACTIONS = {"dismiss": "dismissed", "resolve": "resolved", "reopen": "open"}
# Messages are picked by code from the redirect's query string, never echoed from it, so a crafted
# link cannot put words in the page's mouth.
MESSAGES = {
    "dismissed": "Row {id} dismissed.",
    "resolved": "Row {id} marked resolved.",
    "open": "Row {id} reopened.",
    "mapped": "Organization {id} mapped.",
    "unmapped": "Mapping of organization {id} removed.",
    "note_required": "Dismissing needs a note saying why.",
    "note_too_long": f"Notes are limited to {NOTE_MAX} characters.",
    "not_found": "Row {id} no longer exists.",
    "reopen_conflict": "Row {id} cannot be reopened: another open row has the same key and reason.",
    "unknown_organization": "Organization {id} is not among the Huntress organizations of the newest run.",
    "unknown_company": "That company id is not among the ConnectWise companies of the newest run.",
    "bad_company": "Choose a company by its numeric id.",
    "no_mapping": "Organization {id} had no mapping.",
}
ERRORS = {
    "note_required",
    "note_too_long",
    "not_found",
    "reopen_conflict",
    "unknown_organization",
    "unknown_company",
    "bad_company",
    "no_mapping",
}


def create_app(
    *,
    engine: Engine | Callable[[], Engine] | None = None,
    auth: ReviewAuth | None = None,
    csrf_secret: bytes | None = None,
    reports_root: Path | None = None,
) -> FastAPI:
    """The app. `engine` may be an Engine or a callable returning one (resolved per request)."""
    ctx = _Context(
        engine=_engine_source(engine),
        auth=auth or airflow_auth(),
        csrf=Csrf(csrf_secret if csrf_secret is not None else airflow_secret()),
        reports_root=reports_root,
        env=_environment(),
    )
    app = FastAPI(title="Billing review", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(StarletteHTTPException, ctx.http_error)
    _quarantine_routes(app, ctx)
    _run_routes(app, ctx)
    _mapping_routes(app, ctx)

    @app.get("/", include_in_schema=False)
    def home(_: Annotated[Reviewer, Depends(ctx.auth.reader)], request: Request) -> RedirectResponse:
        return RedirectResponse(ctx.url(request, "/quarantine"), status.HTTP_303_SEE_OTHER)

    return app


# --- shared context -------------------------------------------------------------------------------


@dataclass
class _Context:
    engine: Callable[[], Engine]
    auth: ReviewAuth
    csrf: Csrf
    reports_root: Path | None
    env: Environment

    def db(self) -> Engine:
        return self.engine()

    def root(self) -> Path:
        return self.reports_root if self.reports_root is not None else runtime.reports_root()

    @staticmethod
    def url(request: Request, path: str, query: Mapping[str, Any] | None = None) -> str:
        """An absolute path inside this app; root_path carries the mount point (and base_url)."""
        base = request.scope.get("root_path", "")
        clean = {k: v for k, v in (query or {}).items() if v not in (None, "")}
        return f"{base}{path}" + (f"?{urlencode(clean)}" if clean else "")

    @staticmethod
    def airflow_url(request: Request, path: str) -> str:
        """A path of the Airflow UI: the mount point stripped from root_path leaves base_url's path."""
        root = request.scope.get("root_path", "")
        return root.removesuffix(runtime.REVIEW_MOUNT_PATH) + path

    def render(
        self, request: Request, reviewer: Reviewer, template: str, status_code: int = 200, **values: Any
    ) -> HTMLResponse:
        nonce, new = self.csrf.nonce(request)
        script_nonce = secrets.token_urlsafe(16)
        values |= {
            "request": request,
            "reviewer": reviewer,
            "csrf_field": CSRF_FIELD,
            "csrf_token": self.csrf.token(nonce, reviewer),
            "nonce": script_nonce,
            "url": lambda path, **q: self.url(request, path, q),
            "airflow_home_url": self.airflow_url(request, "/"),
            "message": _message(request),
        }
        html = self.env.get_template(template).render(values)
        response = HTMLResponse(html, status_code=status_code, headers=_page_headers(script_nonce))
        if new:
            self.csrf.set_cookie(response, request, nonce)
        return response

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and wants_html and request.method == "GET":
            if self.auth.login_url is not None:
                return RedirectResponse(self.auth.login_url(str(request.url)), status.HTTP_303_SEE_OTHER)
        if not wants_html:
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        html = self.env.get_template("error.html").render(
            status_code=exc.status_code, detail=str(exc.detail), home=self.url(request, "/quarantine")
        )
        return HTMLResponse(html, exc.status_code, headers={**_page_headers(""), **(exc.headers or {})})


def _engine_source(engine: Engine | Callable[[], Engine] | None) -> Callable[[], Engine]:
    if engine is None:
        return _airflow_engine
    if isinstance(engine, Engine):
        return lambda: engine
    return engine


def _airflow_engine() -> Engine:
    """The billing DB of the `billing_sync_db` connection, looked up per request (cheap, and a
    changed connection takes effect without a restart); one engine per URL for the process."""
    return _engine_for(runtime.database_url())


@cache
def _engine_for(url: str) -> Engine:
    engine = store.make_engine(url)
    store.ensure_schema(engine)
    return engine


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.globals.update(REASON_HELP=REASON_HELP, DAG_ID=DAG_ID)
    return env


def _when(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _page_headers(script_nonce: str) -> dict[str, str]:
    # Only our own nonce'd script and styles run; framing only by the Airflow UI (same origin).
    csp = (
        "default-src 'none'; "
        f"script-src 'nonce-{script_nonce}'; style-src 'nonce-{script_nonce}'; "
        "img-src 'self' data:; form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
    )
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _message(request: Request) -> dict[str, str] | None:
    code = request.query_params.get("done") or request.query_params.get("error")
    if code not in MESSAGES:
        return None
    ident = request.query_params.get("id", "")
    ident = ident if ident.isdigit() else ""
    return {"text": MESSAGES[code].format(id=ident), "kind": "error" if code in ERRORS else "ok"}


def _bad_request(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail)


def _int_param(value: str | None, name: str) -> int | None:
    if value in (None, ""):
        return None
    if not value.strip().isdigit():
        raise _bad_request(f"{name} must be a whole number")
    return int(value)


def _page_param(value: str | None) -> int:
    page = _int_param(value, "page") or 1
    return max(page, 1)


def _form_editor(ctx: _Context) -> Callable[..., Reviewer]:
    """The `editor` dependency plus the CSRF check of the posted form: what every POST route takes."""

    def form_editor(
        request: Request,
        reviewer: Annotated[Reviewer, Depends(ctx.auth.editor)],
        csrf_token: Annotated[str, Form()] = "",
    ) -> Reviewer:
        ctx.csrf.check(request, csrf_token, reviewer)
        return reviewer

    return form_editor


# --- quarantine -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantineFilter:
    status: str = "open"
    billing_date: date | None = None
    reason_code: str | None = None
    company_id: int | None = None
    run_id: str | None = None

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> Self:
        state = q.get("status") or "open"
        if state not in (*store.QUARANTINE_STATUSES, "all"):
            raise _bad_request("status must be open, resolved, dismissed or all")
        try:
            day = date.fromisoformat(q["billing_date"]) if q.get("billing_date") else None
        except ValueError:
            raise _bad_request("billing_date must be a date, YYYY-MM-DD") from None
        reason = q.get("reason_code") or None
        if reason is not None and (len(reason) > 100 or not reason.replace("_", "").isalnum()):
            raise _bad_request("reason_code must be a reason code such as unmapped_organization")
        run_id = q.get("run_id") or None
        if run_id is not None and len(run_id) > 250:
            raise _bad_request("run_id is too long")
        return cls(state, day, reason, _int_param(q.get("company_id"), "company_id"), run_id)

    def store_filters(self) -> dict[str, Any]:
        return {
            "status": None if self.status == "all" else self.status,
            "billing_date": self.billing_date,
            "reason_code": self.reason_code,
            "company_id": self.company_id,
            "run_id": self.run_id,
        }

    def query(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "billing_date": self.billing_date.isoformat() if self.billing_date else None,
            "reason_code": self.reason_code,
            "company_id": self.company_id,
            "run_id": self.run_id,
        }


def _quarantine_routes(app: FastAPI, ctx: _Context) -> None:
    reader, form_editor = ctx.auth.reader, _form_editor(ctx)

    @app.get("/quarantine", response_class=HTMLResponse)
    def quarantine_list(request: Request, reviewer: Annotated[Reviewer, Depends(reader)]) -> HTMLResponse:
        filters = QuarantineFilter.parse(request.query_params)
        page = _page_param(request.query_params.get("page"))
        eng = ctx.db()
        total = store.count_quarantine(eng, **filters.store_filters())
        rows = store.list_quarantine(
            eng, **filters.store_filters(), limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
        )
        return ctx.render(
            request,
            reviewer,
            "quarantine.html",
            rows=rows,
            total=total,
            page=page,
            pages=max(1, -(-total // PAGE_SIZE)),
            filters=filters,
            back=urlencode({k: v for k, v in filters.query().items() if v is not None}),
            statuses=(*store.QUARANTINE_STATUSES, "all"),
            reasons=list(REASON_CODES),
            companies=data.company_names(eng),
        )

    @app.get("/quarantine/{row_id}", response_class=HTMLResponse)
    def quarantine_row(
        request: Request, row_id: int, reviewer: Annotated[Reviewer, Depends(reader)]
    ) -> HTMLResponse:
        eng = ctx.db()
        row = store.get_quarantine(eng, row_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No quarantine row {row_id}")
        return ctx.render(
            request, reviewer, "quarantine_row.html", row=row, companies=data.company_names(eng), back="row"
        )

    @app.post("/quarantine/{row_id}")
    def quarantine_action(
        request: Request,
        row_id: int,
        reviewer: Annotated[Reviewer, Depends(form_editor)],
        action: Annotated[str, Form()],
        note: Annotated[str, Form()] = "",
        back: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        if action not in QUARANTINE_ACTIONS:
            raise _bad_request("action must be dismiss, resolve or reopen")
        outcome = _apply_quarantine_action(
            ctx.db(), row_id, QUARANTINE_ACTIONS[action], note.strip(), reviewer
        )
        return _back_to_quarantine(request, ctx, back, row_id, outcome)


def _apply_quarantine_action(eng: Engine, row_id: int, new_status: str, note: str, reviewer: Reviewer) -> str:
    """The message code of what happened."""
    if new_status == "dismissed" and not note:
        return "note_required"
    if len(note) > NOTE_MAX:
        return "note_too_long"
    try:
        store.set_quarantine_status(eng, row_id, new_status, reviewer.name, note or None)
    except store.QuarantineNotFound:
        return "not_found"
    except ValueError:
        return "reopen_conflict"
    return new_status


def _back_to_quarantine(
    request: Request, ctx: _Context, back: str, row_id: int, outcome: str
) -> RedirectResponse:
    """Back to the list with its filters, or to the row page; rebuilt from parsed filters, so the
    redirect can only ever land inside this app."""
    key = "error" if outcome in ERRORS else "done"
    if back == "row":
        target = ctx.url(request, f"/quarantine/{row_id}", {key: outcome, "id": row_id})
    else:
        filters = QuarantineFilter.parse(dict(parse_qsl(back)))
        target = ctx.url(request, "/quarantine", {**filters.query(), key: outcome, "id": row_id})
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)


# --- runs -----------------------------------------------------------------------------------------


def _run_routes(app: FastAPI, ctx: _Context) -> None:
    reader = ctx.auth.reader

    @app.get("/runs", response_class=HTMLResponse)
    def runs_list(request: Request, reviewer: Annotated[Reviewer, Depends(reader)]) -> HTMLResponse:
        page = _page_param(request.query_params.get("page"))
        runs = store.list_runs(ctx.db(), limit=RUNS_PAGE_SIZE + 1, offset=(page - 1) * RUNS_PAGE_SIZE)
        root = ctx.root()
        items = [_run_view(request, ctx, r, root) for r in runs[:RUNS_PAGE_SIZE]]
        return ctx.render(
            request, reviewer, "runs.html", runs=items, page=page, has_next=len(runs) > RUNS_PAGE_SIZE
        )

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    def run_detail(
        request: Request, run_id: str, reviewer: Annotated[Reviewer, Depends(reader)]
    ) -> HTMLResponse:
        eng = ctx.db()
        run = store.get_run(eng, run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No billing run with that id")
        view = _run_view(request, ctx, run, ctx.root())
        open_rows = store.count_quarantine(eng, run_id=run_id, status="open")
        return ctx.render(request, reviewer, "run.html", run=view, open_rows=open_rows)

    @app.get("/runs/{run_id}/report")
    def run_report(
        request: Request, run_id: str, _: Annotated[Reviewer, Depends(reader)]
    ) -> RedirectResponse:
        """The "report page" link of the run's alerts (notify.report_page_url): its report.html
        once the run has recorded one, else the run's page."""
        run = store.get_run(ctx.db(), run_id)
        if run is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No billing run with that id")
        base = f"/runs/{quote(run_id, safe='')}"
        if data.report_file(data.report_dir(run, ctx.root()), REPORT_FILE) is not None:
            base += f"/files/{REPORT_FILE}"
        return RedirectResponse(ctx.url(request, base), status.HTTP_303_SEE_OTHER)

    @app.get("/runs/{run_id}/files/{name}")
    def run_file(
        request: Request, run_id: str, name: str, _: Annotated[Reviewer, Depends(reader)]
    ) -> Response:
        run = store.get_run(ctx.db(), run_id)
        path = data.report_file(data.report_dir(run, ctx.root()), name) if run else None
        if path is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "No such report file")
        return FileResponse(
            path, media_type=data.REPORT_TYPES[path.suffix.lower()], headers=_file_headers(path)
        )


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


def _run_view(request: Request, ctx: _Context, run: dict[str, Any], root: Path) -> dict[str, Any]:
    counts = run.get("counts") or {}
    directory = data.report_dir(run, root)
    base = f"/runs/{quote(run['run_id'], safe='')}"
    files = [
        {**f, "url": ctx.url(request, f"{base}/files/{quote(f['name'], safe='')}")}
        for f in data.report_files(directory)
    ]
    return {
        **run,
        "outcome_counts": {k: v for k, v in counts.items() if k != "total" and v},
        "total": counts.get("total"),
        "files": files,
        "report_missing": bool(run.get("report_path")) and directory is None,
        "url": ctx.url(request, base),
        "dag_run_url": ctx.airflow_url(request, f"/dags/{DAG_ID}{base}"),
    }


# --- organization mapping -------------------------------------------------------------------------


def _mapping_routes(app: FastAPI, ctx: _Context) -> None:
    reader, form_editor = ctx.auth.reader, _form_editor(ctx)

    @app.get("/mapping", response_class=HTMLResponse)
    def mapping(request: Request, reviewer: Annotated[Reviewer, Depends(reader)]) -> HTMLResponse:
        eng = ctx.db()
        page = data.mapping_page(eng, data.staged(eng))
        focus = _int_param(request.query_params.get("id"), "id")
        return ctx.render(request, reviewer, "mapping.html", page=page, focus=focus)

    @app.post("/mapping")
    def set_mapping(
        request: Request,
        reviewer: Annotated[Reviewer, Depends(form_editor)],
        organization_id: Annotated[int, Form()],
        company_id: Annotated[str, Form()] = "",
        note: Annotated[str, Form()] = "",
    ) -> RedirectResponse:
        outcome = _apply_mapping(ctx.db(), organization_id, company_id, note.strip(), reviewer)
        return _back_to_mapping(request, ctx, organization_id, outcome)

    @app.post("/mapping/{organization_id}/delete")
    def delete_mapping(
        request: Request, organization_id: int, _: Annotated[Reviewer, Depends(form_editor)]
    ) -> RedirectResponse:
        removed = store.delete_org_map(ctx.db(), organization_id)
        return _back_to_mapping(request, ctx, organization_id, "unmapped" if removed else "no_mapping")


def _apply_mapping(eng: Engine, organization_id: int, company_raw: str, note: str, reviewer: Reviewer) -> str:
    """Validate against the newest staged frames, then write; returns the message code."""
    company = company_raw.strip()
    if not company.isdigit():
        return "bad_company"
    if len(note) > NOTE_MAX:
        return "note_too_long"
    staged = data.staged(eng)
    if organization_id not in staged.organization_ids():
        return "unknown_organization"
    if int(company) not in staged.company_ids():
        return "unknown_company"
    store.set_org_map(eng, organization_id, int(company), note or None, reviewer.name)
    return "mapped"


def _back_to_mapping(request: Request, ctx: _Context, organization_id: int, outcome: str) -> RedirectResponse:
    key = "error" if outcome in ERRORS else "done"
    target = ctx.url(request, "/mapping", {key: outcome, "id": organization_id}) + f"#org-{organization_id}"
    return RedirectResponse(target, status.HTTP_303_SEE_OTHER)
