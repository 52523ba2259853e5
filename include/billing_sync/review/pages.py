"""The app's context (DB, CSRF, templates) and how a page or error renders.

What every route shares: the billing DB, CSRF, the reports root and the templates.

`create_app` puts one `ReviewContext` in ``app.state.review``; routes reach it through
`deps.ContextDep`. Messages after an action are picked by code from the redirect's query string,
never echoed from it, so a crafted link cannot put words in the page's mouth.

Every URL `url` and `redirect` make keeps the request's tenant (`tenancy`), and every page is
rendered with it: its DAG for the links into Airflow, and the tenant switcher of the header.
"""

import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote, urlencode

from fastapi import Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pydantic_core import ErrorDetails
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from billing_sync import billing_gap, money, runtime, tenants
from billing_sync.names import REASON_HELP, reason_label
from billing_sync.review import flash, tenancy
from billing_sync.review.inputs import QueryValue, is_id
from billing_sync.review.security import CSRF_FIELD, Csrf, Reviewer

TEMPLATES = Path(__file__).with_name("templates")
MESSAGES = {
    "unpaused": "The DAG was unpaused: its queued runs start now (the page below follows yours).",
    "dismissed": "Row {id} dismissed.",
    "dismissed_group": "Dismissed with your note: {id} open row(s) of the card.",
    "dismissed_company": "Every open row of the card dismissed with your note.",
    "dismissed_organization": "Every open row of the card dismissed with your note.",
    "none_open": "Nothing was dismissed: the card has no open row left that the filters keep.",
    "resolved": "Row {id} marked resolved.",
    "open": "Row {id} reopened.",
    "mapped": "Organization {id} mapped.",
    "mapped_many": "{id} organizations mapped.",
    "unmapped": "Mapping of organization {id} removed.",
    "note_required": "Dismissing needs a note saying why.",
    "not_found": "Row {id} no longer exists.",
    "reopen_conflict": "Row {id} cannot be reopened: another open row has the same key and reason.",
    "unknown_organization": "Organization {id} is not among the Huntress organizations of the newest run.",
    "unknown_company": "That company id is not among the ConnectWise companies of the newest run.",
    "bad_company": "Choose a company by its numeric id.",
    "no_mapping": "Organization {id} had no mapping.",
    "none_selected": "Tick the organizations to map first.",
}
ERRORS = {
    "note_required",
    "none_open",
    "not_found",
    "reopen_conflict",
    "unknown_organization",
    "unknown_company",
    "bad_company",
    "no_mapping",
    "none_selected",
}


@dataclass
class ReviewContext:
    """The app's own state. `page_size` and `runs_page_size` are read per request."""

    engine: Callable[[], Engine]
    csrf: Csrf
    reports_root: Path | None
    env: Environment
    login_url: Callable[[str], str] | None
    page_size: Callable[[], int]
    runs_page_size: Callable[[], int]

    def db(self) -> Engine:
        return self.engine()

    def root(self) -> Path:
        return self.reports_root if self.reports_root is not None else runtime.reports_root()

    @staticmethod
    def url(request: Request, path: str, query: Mapping[str, QueryValue] | None = None) -> str:
        """An absolute path inside this app, with the request's tenant; root_path carries the mount
        point (and base_url)."""
        base: str = request.scope.get("root_path", "")
        wanted = {**tenancy.query_of(request), **(query or {})}
        clean = {k: v for k, v in wanted.items() if v not in (None, "")}
        return f"{base}{path}" + (f"?{urlencode(clean)}" if clean else "")

    @staticmethod
    def airflow_url(request: Request, path: str) -> str:
        """A path of the Airflow UI: the mount point stripped from root_path leaves base_url's path."""
        root: str = request.scope.get("root_path", "")
        return root.removesuffix(runtime.REVIEW_MOUNT_PATH) + path

    def redirect(
        self, request: Request, path: str, query: Mapping[str, QueryValue] | None = None
    ) -> RedirectResponse:
        return RedirectResponse(self.url(request, path, query), status.HTTP_303_SEE_OTHER)

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
            "message": self._message(request),
            **_tenant_values(request),
        }
        html = self.env.get_template(template).render(values)
        response = HTMLResponse(html, status_code=status_code, headers=page_headers(script_nonce))
        if new:
            self.csrf.set_cookie(response, request, nonce)
        return response

    def _message(self, request: Request) -> dict[str, str] | None:
        """The flash after an action, naming the organization and company it was about."""
        message = _message(request)
        ident = request.query_params.get("id", "")
        chosen = tenancy.of_request(request)
        if message is None or chosen is None or not is_id(ident):
            return message
        code = request.query_params.get("done") or request.query_params.get("error") or ""
        about = flash.about(self.db(), code, int(ident), tenant=chosen.id)
        if about:
            message["text"] = f"{message['text'].rstrip('.')}: {about}."
        return message

    async def http_error(self, request: Request, exc: Exception) -> Response:
        """Errors as a page for browsers, as ``{"detail": ...}`` for everything else; a browser
        without a valid login is sent to the login page."""
        assert isinstance(exc, StarletteHTTPException)
        wants_html = "text/html" in request.headers.get("accept", "")
        if exc.status_code == status.HTTP_401_UNAUTHORIZED and wants_html and request.method == "GET":
            if self.login_url is not None:
                return RedirectResponse(self.login_url(str(request.url)), status.HTTP_303_SEE_OTHER)
        if not wants_html:
            return JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
        html = self.env.get_template("error.html").render(
            status_code=exc.status_code,
            detail=str(exc.detail),
            home=self.url(request, "/quarantine"),
            others=self._other_tenants(request) if exc.status_code == status.HTTP_403_FORBIDDEN else [],
        )
        return HTMLResponse(html, exc.status_code, headers={**page_headers(""), **(exc.headers or {})})

    def _other_tenants(self, request: Request) -> list[tuple[str, str]]:
        """(tenant, its quarantine page) for each other tenant the user may read: a page refused on
        one tenant's DAG (the one chosen without asking, say) is no dead end for a user of another's,
        and names no tenant the user may not see."""
        chosen = tenancy.of_request(request)
        others = [c.id for c in tenancy.readable(request) if chosen and c.id != chosen.id]
        return [(t, self.url(request, "/quarantine", {tenancy.PARAM: t})) for t in others]

    async def validation_error(self, request: Request, exc: Exception) -> Response:
        """A missing or malformed field is a 400 naming it, not FastAPI's 422 dump of the input."""
        assert isinstance(exc, RequestValidationError)
        detail = "; ".join(_field_error(e) for e in exc.errors()[:3]) or "Malformed request"
        return await self.http_error(request, StarletteHTTPException(status.HTTP_400_BAD_REQUEST, detail))


def _field_error(error: ErrorDetails) -> str:
    """ "Form field note: String should have at most 2000 characters" from one pydantic error."""
    loc = [str(p) for p in error.get("loc", ())]
    kind = {"body": "Form field", "query": "Query parameter", "path": "Path parameter"}
    prefix = kind.get(loc[0], "Field") if loc else "Request"
    name = ".".join(loc[1:] if loc and loc[0] in kind else loc)
    return (
        f"{prefix} {name}: {error.get('msg', 'invalid')}"
        if name
        else f"{prefix}: {error.get('msg', 'invalid')}"
    )


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    env.filters["q"] = lambda v: quote(str(v), safe="")
    env.filters["money"] = money.fmt  # an amount with two decimals ("1,234.50"); '' when unknown
    env.globals.update(REASON_HELP=REASON_HELP, reason=_reason, reason_label=reason_label)
    # Which way a held amount runs (under-billed / over-billed), per row and per group of rows.
    env.globals.update(gap=billing_gap.of_row, gap_totals=billing_gap.totals, GAP_LABELS=billing_gap.LABELS)
    return env


def _reason(code: str) -> Markup:
    """A reason as a person reads it: the plain label first (its help on hover), the code small after
    it, since the code is what filters, CSVs and other tools use."""
    return Markup('<span class="chip" title="{}">{}</span> <code class="muted small">{}</code>').format(
        REASON_HELP.get(code, ""), reason_label(code), code
    )


class TenantValues(TypedDict):
    """What every page's header and links read of the request's tenant (`_tenant_values`)."""

    tenant: tenancy.PageTenant | None
    tenant_choices: tuple[tenancy.Choice, ...]
    dag_id: str
    apply_dag_id: str
    app_root: str
    tenant_param: str


def _tenant_values(request: Request) -> TenantValues:
    """What the header's switcher and the links into Airflow need: `tenant` (None before the tenant
    was chosen), `dag_id` (the single-tenant DAG then) and `app_root`, this app's own path."""
    chosen = tenancy.of_request(request)
    return {
        "tenant": chosen,
        "tenant_choices": tenancy.readable(request),
        "dag_id": chosen.dag_id if chosen else tenants.DEFAULT.dag_id,
        "apply_dag_id": tenants.apply_dag_id_of(chosen.id if chosen else tenants.DEFAULT.id),
        "app_root": request.scope.get("root_path", ""),
        "tenant_param": tenancy.PARAM,
    }


def _when(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def page_headers(script_nonce: str) -> dict[str, str]:
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
    return {
        "text": MESSAGES[code].format(id=ident if is_id(ident) else ""),
        "kind": "error" if code in ERRORS else "ok",
    }


def outcome_query(outcome: str, ident: int) -> dict[str, QueryValue]:
    """The redirect's query for an action's outcome: `done` or `error`, and the id it was about."""
    return {("error" if outcome in ERRORS else "done"): outcome, "id": ident}
