"""ConnectWise's error bodies and the exception that carries them to the response."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# ---------------------------------------------------------------------------------------------
# Errors: always {"code", "message", "errors": [{"code", "message", "resource", "field"}]}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: Iterable[Mapping[str, str]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.errors = [dict(e) for e in errors]
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "errors": self.errors}


ERROR_CODES = {
    400: "InvalidObject",
    401: "Unauthorized",
    403: "Security",
    404: "NotFound",
    409: "Conflict",
    429: "TooManyRequests",
    500: "UnexpectedError",
    503: "ServiceUnavailable",
}


def _error(code: str, message: str, resource: str, field: str) -> dict[str, str]:
    return {"code": code, "message": message, "resource": resource, "field": field}


def invalid(resource: str, field: str, code: str, message: str) -> ApiError:
    return ApiError(
        400, "InvalidObject", f"{resource} object is invalid", [_error(code, message, resource, field)]
    )


def not_found(resource: str, message: str, field: str = "id") -> ApiError:
    return ApiError(404, "NotFound", message, [_error("NotFound", message, resource, field)])


def unauthorized(message: str, status: int = 401) -> ApiError:
    # Never name the keys that were sent: error bodies end up in logs.
    if status == 404:
        # Cloud ConnectWise sometimes answers bad credentials with a plain 404 (reference, Errors;
        # developer guide "PSA API Requests": "getting a 404 ... on cloud? You may have incorrect
        # authentication"). Such a 404 says nothing about credentials.
        return not_found("route", "The requested resource was not found.", "")
    return ApiError(
        401, "Unauthorized", message, [_error("Unauthorized", message, "authorization", "Authorization")]
    )
