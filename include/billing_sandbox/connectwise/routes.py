"""The FastAPI app: auth and Accept checks, the read and write routes, ConnectWise's error handlers."""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import ApiError, _error, invalid, not_found, unauthorized
from .query import _int_param, _params
from .responses import (
    _addition_ids,
    _agreement_id,
    _base,
    _body,
    _path_id,
    _record_response,
    count_response,
    list_response,
)
from .sandbox import ConnectWiseSandbox
from .values import (
    ADDITIONS_ROUTE,
    API_MEMBER,
    INT32_MAX,
    JSON_TYPE,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    VERSION_CODE,
    VERSION_NUMBER,
)


def _check_auth(request: Request, sandbox: ConnectWiseSandbox) -> None:
    """Basic companyId+publicKey:privateKey (company id case-insensitive), then the clientId header."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    status = sandbox.bad_credentials_status
    if scheme.lower() != "basic" or not token.strip():
        raise unauthorized(
            "Authentication is required: send Authorization: Basic companyId+publicKey:privateKey.", status
        )
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise unauthorized("The Authorization header is not valid Basic credentials.", status) from None
    user, colon, private = decoded.partition(":")
    company, plus, public = user.partition("+")
    section = sandbox.section
    ok = bool(colon and plus)
    ok &= hmac.compare_digest(company.lower().encode(), sandbox.company_id.lower().encode())
    ok &= hmac.compare_digest(public.encode(), str(section["public_key"]).encode())
    ok &= hmac.compare_digest(private.encode(), str(section["private_key"]).encode())
    if not ok:
        raise unauthorized(
            "Invalid credentials: the company, public key or private key is not valid.", status
        )
    client_id = request.headers.get("clientid", "").strip()
    if not client_id:
        raise invalid(
            "clientId", "clientId", "Required", "The clientId header is required on every API request."
        )
    if not hmac.compare_digest(
        client_id.lower().encode(), str(section["client_id"]).strip().lower().encode()
    ):
        raise invalid(
            "clientId", "clientId", "InvalidClientId", "The clientId header is not a registered integration."
        )


VENDOR_TYPE = "application/vnd.connectwise.com+json"
VERSION_FORMAT = re.compile(r"\d{4}\.\d{1,2}")


def _check_accept(request: Request) -> None:
    """`Accept: application/vnd.connectwise.com+json; version=YYYY.N` pins a version; any such
    version is served (ConnectWise maps it to the newest model released at or before it: developer
    guide, "PSA Versioning"), as are plain `application/json` and `*/*` (the latest). A version that
    is no YYYY.N release number is refused: nothing public says what ConnectWise does with one, and
    the stricter reading keeps a client from sending a malformed pin unnoticed."""
    for part in request.headers.get("accept", "").split(","):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() != VENDOR_TYPE:
            continue
        for param in params:
            key, _, value = param.partition("=")
            version = value.strip().strip('"')
            if key.strip().lower() == "version" and not VERSION_FORMAT.fullmatch(version):
                shown = version if len(version) <= 20 else version[:20] + "..."
                raise invalid(
                    "Accept",
                    "version",
                    "InvalidVersion",
                    f"The API version '{shown}' is not a release such as 2025.1 (YYYY.N).",
                )


def create_app(section: dict[str, Any], scenario: dict[str, Any]) -> FastAPI:
    """The ConnectWise Manage API over `section` (the scenario's `connectwise` object)."""
    sandbox = ConnectWiseSandbox(section, scenario)
    app = FastAPI(title="ConnectWise Manage sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = sandbox
    _install_errors(app)

    @app.get("/login/companyinfo/{company_id}")
    async def company_info(company_id: str) -> JSONResponse:
        if company_id.lower() != sandbox.company_id.lower():
            # An unknown company is 200 with the JSON body `null`, not a 404 (reference, Errors;
            # django-connectwise reads it so).
            return JSONResponse(None, media_type=JSON_TYPE)
        return JSONResponse(
            {
                "CompanyName": sandbox.company_name,
                "Codebase": sandbox.codebase,
                "VersionCode": VERSION_CODE,
                "VersionNumber": VERSION_NUMBER,
                "CompanyID": sandbox.company_id,
                "IsCloud": True,
                "SiteUrl": "",
            },
            media_type=JSON_TYPE,
        )

    router = APIRouter(prefix=f"/{sandbox.codebase}apis/3.0")
    _add_reads(router, sandbox)
    _add_writes(router, sandbox)
    app.include_router(router)
    return app


def _guard(sandbox: ConnectWiseSandbox) -> Callable[..., Any]:
    """Wrap a handler so that auth (and clientId) is checked before anything else."""

    def wrap(handler: Callable[..., Any]) -> Callable[..., Any]:
        async def run(request: Request) -> Response:
            _check_auth(request, sandbox)
            _check_accept(request)
            sandbox.security.check(request.method, _api_route(request), request.path_params)
            result = handler(request)
            if hasattr(result, "__await__"):
                result = await result
            return result

        run.__name__ = handler.__name__
        return run

    return wrap


def _api_route(request: Request) -> str:
    """The matched route's template after `apis/3.0` (e.g. `/finance/agreements/{id}/additions`)."""
    route = request.scope.get("route")
    template = str(getattr(route, "path", request.url.path))
    return template.partition("apis/3.0")[2] or template


def _add_resource(
    router: APIRouter, s: ConnectWiseSandbox, path: str, attr: str, resource: str, what: str
) -> None:
    """GET list, /count and /{id} for one top-level collection."""
    guard = _guard(s)

    def visible(coll: Any) -> list[int] | None:
        # A role whose agreements Inquire is customized lists only those agreements (security.py).
        return s.security.visible_agreements(coll.ids) if attr == "agreements" else None

    def listing(request: Request) -> Response:
        with s.lock:
            coll = getattr(s, attr)
            return list_response(request, s, coll, visible(coll))

    def count(request: Request) -> Response:
        with s.lock:
            coll = getattr(s, attr)
            return count_response(request, coll, visible(coll))

    def one(request: Request) -> Response:
        rid = _path_id(request, "id", resource, what)
        with s.lock:
            coll = getattr(s, attr)
            record = coll.by_id.get(rid)
            if record is None:
                raise not_found(resource, f"{what} with id {rid} was not found.")
            return _record_response(request, s, coll, record)

    listing.__name__, count.__name__, one.__name__ = f"list_{attr}", f"count_{attr}", f"get_{attr}"
    router.add_api_route(path, guard(listing), methods=["GET"])
    router.add_api_route(f"{path}/count", guard(count), methods=["GET"])
    router.add_api_route(f"{path}/{{id}}", guard(one), methods=["GET"])


def _add_reads(router: APIRouter, s: ConnectWiseSandbox) -> None:
    guard = _guard(s)

    def agreement_types(request: Request) -> Response:
        # GET /finance/agreements/types (2026.4 definition, AgreementType): the types the scenario's
        # agreements name and ConnectWise's usual ones. Before /finance/agreements/{id}, which would
        # otherwise take "types" for an id.
        with s.lock:
            names = dict(s.lookups.agreement_type.names)
        types = [
            {
                "id": ident,
                "name": name,
                "defaultFlag": False,
                "inactiveFlag": False,
                "prePaymentFlag": False,
                "_info": {"lastUpdated": "2025-01-01T00:00:00Z", "updatedBy": "sandbox"},
            }
            for ident, name in sorted(names.items())
        ]
        return JSONResponse(types, media_type=JSON_TYPE)

    def my_security(request: Request) -> Response:
        # The member's own levels: always readable (security.py names the public clients that call it).
        return JSONResponse(s.security.my_security({"id": 1, "identifier": API_MEMBER}), media_type=JSON_TYPE)

    router.add_api_route("/finance/agreements/types", guard(agreement_types), methods=["GET"])
    router.add_api_route("/system/mySecurity", guard(my_security), methods=["GET"])
    _add_resource(router, s, "/company/companies", "companies", "company", "Company")
    _add_resource(router, s, "/procurement/catalog", "catalog", "catalog", "Product")
    _add_resource(router, s, "/finance/agreements", "agreements", "agreement", "Agreement")

    def additions(request: Request) -> Response:
        aid = _agreement_id(request)
        with s.lock:
            s.agreement(aid)
            return list_response(request, s, s.additions, s.by_agreement[aid])

    def additions_count(request: Request) -> Response:
        aid = _agreement_id(request)
        with s.lock:
            s.agreement(aid)
            return count_response(request, s.additions, s.by_agreement[aid])

    def addition(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        with s.lock:
            return _record_response(request, s, s.additions, s.addition(aid, xid))

    def audit_trail(request: Request) -> Response:
        params = _params(request)
        kind = params.get("type", "")
        if kind.lower() != "agreementaddition":
            raise invalid(
                "type", "type", "InvalidField", "type must be AgreementAddition (the only audited type here)."
            )
        rid = _int_param(params, "id", None, 1, INT32_MAX)
        if rid is None:
            raise invalid("id", "id", "Required", "The id parameter is required.")
        size = _int_param(params, "pageSize", PAGE_SIZE_DEFAULT, 1, PAGE_SIZE_MAX) or PAGE_SIZE_DEFAULT
        page = _int_param(params, "page", 1, 1, INT32_MAX) or 1
        with s.lock:
            entries = list(reversed(s.audit_by_addition.get(rid, [])))  # newest first
        return JSONResponse(entries[(page - 1) * size : page * size], media_type=JSON_TYPE)

    def system_info(request: Request) -> Response:
        return JSONResponse(
            {
                "version": VERSION_NUMBER,
                "isCloud": True,
                "serverTimeZone": "Eastern Standard Time",
                "licenseBits": [],
            },
            media_type=JSON_TYPE,
        )

    router.add_api_route(ADDITIONS_ROUTE, guard(additions), methods=["GET"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/count", guard(additions_count), methods=["GET"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(addition), methods=["GET"])
    router.add_api_route("/system/audittrail", guard(audit_trail), methods=["GET"])
    router.add_api_route("/system/info", guard(system_info), methods=["GET"])


def _add_writes(router: APIRouter, s: ConnectWiseSandbox) -> None:
    guard = _guard(s)

    async def create(request: Request) -> Response:
        aid = _agreement_id(request)
        body = await _body(request)
        with s.lock:
            record = s.create_addition(aid, body)
            response = _record_response(request, s, s.additions, record, 201)
        response.headers["Location"] = (
            f"{_base(request, s)}/finance/agreements/{aid}/additions/{record['id']}"
        )
        return response

    async def patch(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        body = await _body(request)
        with s.lock:
            return _record_response(request, s, s.additions, s.patch_addition(aid, xid, body))

    async def put(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        body = await _body(request)
        with s.lock:
            return _record_response(request, s, s.additions, s.put_addition(aid, xid, body))

    def delete(request: Request) -> Response:
        aid, xid = _addition_ids(request)
        with s.lock:
            s.delete_addition(aid, xid)
        return Response(status_code=204)

    router.add_api_route(ADDITIONS_ROUTE, guard(create), methods=["POST"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(patch), methods=["PATCH"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(put), methods=["PUT"])
    router.add_api_route(f"{ADDITIONS_ROUTE}/{{additionId}}", guard(delete), methods=["DELETE"])


def _install_errors(app: FastAPI) -> None:
    async def api_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(
            exc.body(), status_code=exc.status, headers=exc.headers or None, media_type=JSON_TYPE
        )

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err = not_found("route", f"No API route matches {request.url.path}.", "")
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}."
            err = ApiError(
                405, "MethodNotAllowed", message, [_error("MethodNotAllowed", message, "route", "method")]
            )
        else:
            message = str(exc.detail)
            err = ApiError(exc.status_code, "Error", message, [_error("Error", message, "route", "")])
        headers = {**(exc.headers or {}), **err.headers}
        return JSONResponse(err.body(), status_code=err.status, headers=headers or None, media_type=JSON_TYPE)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
