"""The Huntress API's routes over the precomputed data."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .data import HuntressData
from .errors import ApiError, error_body
from .query import (
    ACCOUNT_SORT_FIELDS,
    ACCOUNT_STATUSES,
    INVOICE_SORT_FIELDS,
    INVOICE_STATUSES,
    ORGANIZATION_SORT_FIELDS,
    SORT_DIRECTIONS,
    _boolean,
    _choice,
    _filter,
    _page,
    _path_id,
    _sorted,
)
from .sandbox import HuntressGate, HuntressSandbox

# --- routes -------------------------------------------------------------------------------------------------


# A route's handler: the data of the app's sandbox as it is when the request comes in, and the request.
Handler = Callable[[HuntressData, Request], Response]


def create_app(section: dict[str, Any], scenario: dict[str, Any]) -> FastAPI:
    """The Huntress API for one scenario section (already validated by scenario.load_scenario)."""
    app = FastAPI(title="Huntress sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = HuntressSandbox(section)
    app.add_middleware(HuntressGate, sandbox=lambda: app.state.sandbox)
    for path, handler in ROUTES:
        _add_get(app, path, handler)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    return app


def _add_get(app: FastAPI, path: str, handler: Handler) -> None:
    """Serve GET `path` with `handler`, over the data of the sandbox the app holds at the time."""

    async def endpoint(request: Request) -> Response:
        return handler(app.state.sandbox.data, request)

    app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)


def _account(data: HuntressData, request: Request) -> Response:
    return JSONResponse({"account": data.account})


def _organization_list(request: Request, items: list[dict[str, Any]], tag: str) -> Response:
    for name in ("name", "key"):
        wanted = request.query_params.get(name)
        if wanted is not None:
            items = [org for org in items if org[name] == wanted]
    field = _choice(request, "sort_field", ORGANIZATION_SORT_FIELDS, "id")
    direction = _choice(request, "sort_direction", SORT_DIRECTIONS, "desc")
    return _page(request, _sorted(items, field, direction), "organizations", tag)


def _organizations(data: HuntressData, request: Request) -> Response:
    # The own account's organizations only (reference, "Resellers and their managed accounts").
    return _organization_list(request, data.organizations, "organizations")


# The accounts these (reseller) credentials manage: spec paths /v1/accounts... (tag "Reseller").
# Decision: the credentials' own account is not among them (docs/contract.md §5: these routes "serve the
# managed ones"); its organizations are /v1/organizations.
def _accounts(data: HuntressData, request: Request) -> Response:
    items = list(data.managed.values())
    status = _filter(request, "status", ACCOUNT_STATUSES)
    for name, wanted in (
        ("status", status),
        ("name", request.query_params.get("name")),
        ("subdomain", request.query_params.get("subdomain")),
    ):
        if wanted is not None:
            items = [account for account in items if account[name] == wanted]
    field = _choice(request, "sort_field", ACCOUNT_SORT_FIELDS, "id")
    direction = _choice(request, "sort_direction", SORT_DIRECTIONS, "desc")
    # The spec's Account has no created_at/updated_at to sort by: those orders fall back to id.
    field = "id" if field in ("created_at", "updated_at") else field
    return _page(request, _sorted(items, field, direction), "accounts", "accounts")


def _managed_account_id(data: HuntressData, request: Request) -> int:
    # The reference: 404 means missing *or* not permitted; an account these credentials do not
    # manage (the own one included) is both, as far as they can tell.
    account_id = _path_id(request, "account_id")
    if account_id not in data.managed:
        raise ApiError(404, f"Account {account_id} not found")
    return account_id


def _one_account(data: HuntressData, request: Request) -> Response:
    return JSONResponse({"account": data.managed[_managed_account_id(data, request)]})


def _account_organizations(data: HuntressData, request: Request) -> Response:
    account_id = _managed_account_id(data, request)
    if account_id in data.forbidden:
        # Huntress's Swagger 2.0 definition (huntress-openapi.json, this path) documents 200 and 403
        # ("There was an issue with your API credential or permissions") and nothing else.
        raise ApiError(403, f"Not permitted to list the organizations of account {account_id}")
    return _organization_list(request, data.managed_organizations[account_id], f"organizations/{account_id}")


def _organization(data: HuntressData, request: Request) -> Response:
    org_id = _path_id(request)
    org = data.organization_by_id.get(org_id)
    if org is None:
        raise ApiError(404, f"Organization {org_id} not found")
    if request.app.state.sandbox.actual_usages_as_string and "actual_usages" in org:
        # The `actual_usages_as_string` fault (sandbox.FAULT_OPTIONS): the definition's `string` type.
        org = {**org, "actual_usages": json.dumps(org["actual_usages"])}
    return JSONResponse({"organization": org})


def _invoices(data: HuntressData, request: Request, sortable: bool, tag: str) -> Response:
    items = data.invoices
    status = _filter(request, "status", INVOICE_STATUSES)
    if status is not None:
        items = [inv for inv in items if inv["status"] == status]
    field, direction = "id", "desc"
    if sortable:  # the reseller list documents no sort or has_usage parameters: they are ignored there
        has_usage = _boolean(request, "has_usage")
        if has_usage is not None:
            items = [inv for inv in items if inv["has_usage"] is has_usage]
        field = _choice(request, "sort_field", INVOICE_SORT_FIELDS, "id")
        direction = _choice(request, "sort_direction", SORT_DIRECTIONS, "desc")
    return _page(request, _sorted(items, field, direction), "invoices", tag)


def _invoice_id(data: HuntressData, request: Request) -> int:
    inv_id = _path_id(request)
    if inv_id not in data.invoice_by_id:
        raise ApiError(404, f"Invoice {inv_id} not found")
    return inv_id


def _account_invoices(data: HuntressData, request: Request) -> Response:
    return _invoices(data, request, True, "invoices")


def _reseller_invoices(data: HuntressData, request: Request) -> Response:
    return _invoices(data, request, False, "reseller_invoices")


def _one_invoice(data: HuntressData, request: Request) -> Response:
    return JSONResponse({"invoice": data.invoice_by_id[_invoice_id(data, request)]})


def _organization_usage(data: HuntressData, request: Request) -> Response:
    inv_id = _invoice_id(data, request)
    plural = "organization_usage_line_items"
    return _page(request, data.org_lines[inv_id], plural, f"{plural}/{inv_id}")


def _account_usage(data: HuntressData, request: Request) -> Response:
    inv_id = _invoice_id(data, request)
    plural = "account_usage_line_items"
    return _page(request, data.account_lines[inv_id], plural, f"{plural}/{inv_id}")


# Every GET route, in the order the app matches them.
ROUTES: tuple[tuple[str, Handler], ...] = (
    ("/v1/account", _account),
    ("/v1/organizations", _organizations),
    ("/v1/accounts", _accounts),
    ("/v1/accounts/{account_id}", _one_account),
    ("/v1/accounts/{account_id}/organizations", _account_organizations),
    ("/v1/organizations/{id}", _organization),
    ("/v1/invoices", _account_invoices),
    ("/v1/reseller/invoices", _reseller_invoices),
    ("/v1/reseller/invoices/{id}", _one_invoice),
    ("/v1/invoices/{id}", _one_invoice),
    ("/v1/reseller/invoices/{id}/organization_usage_line_items", _organization_usage),
    ("/v1/reseller/invoices/{id}/account_usage_line_items", _account_usage),
)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return JSONResponse(error_body(exc.status, exc.message), exc.status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse(error_body(exc.status_code, exc.detail), exc.status_code, headers=exc.headers)
