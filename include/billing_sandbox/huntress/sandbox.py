"""`HuntressSandbox` (`app.state.sandbox`) and `HuntressGate`: auth, the rate limit and its headers."""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing_sandbox.common import ADMIN_PREFIX

from .data import HuntressData
from .errors import error_body
from .window import SlidingWindow


class HuntressSandbox:
    """`app.state.sandbox`: the data served, the rate-limit window, and the admin hooks."""

    # Faults only this API takes (docs/contract.md §5), through POST /_sandbox/faults (common.py).
    FAULT_OPTIONS: dict[str, tuple[dict[str, Any], Any]] = {
        # false: a rate-limit 429 carries no x-huntress-api-call-* headers and no Retry-After. The
        # reference leaves what a real 429 carries undocumented ("A client must recover from a 429
        # with no headers at all"). 200s keep the headers either way: public integrations read them
        # on 200s (reference, "Rate-limit answers"), and nothing public says they are ever missing.
        "rate_limit_headers": ({"type": "boolean"}, True),
        # Another tool using the same key: its requests fill the same per-account sliding window
        # (reference, "Transport": 60 per minute per account).
        "foreign_requests_per_minute": ({"type": "number", "minimum": 0, "maximum": 100_000}, 0),
        # Huntress's Swagger 2.0 definition (huntress-openapi.json, OrganizationWithActualProductUsages)
        # types `actual_usages` as `string` while its example is an object: true serves it as a
        # string holding that JSON object on GET /v1/organizations/{id}.
        "actual_usages_as_string": ({"type": "boolean"}, False),
    }

    def __init__(self, section: dict[str, Any]) -> None:
        self.section = section
        self.retry_after = section.get("rate_limit_retry_after", False)
        self.rate_limit_headers = True
        self.actual_usages_as_string = False
        self.data = HuntressData(section)
        self.window = self._new_window()
        self._credentials = f"{section['api_key']}:{section['api_secret']}".encode()

    def apply_fault_options(self, options: dict[str, Any]) -> None:
        self.rate_limit_headers = options["rate_limit_headers"]
        self.window.set_foreign(options["foreign_requests_per_minute"])
        self.actual_usages_as_string = options["actual_usages_as_string"]

    def _new_window(self) -> SlidingWindow:
        return SlidingWindow(
            self.section.get("rate_limit_per_minute", 60), self.section.get("rate_limit_window_s", 60)
        )

    def authorized(self, header: bytes | None) -> bool:
        if not header:
            return False
        scheme, _, encoded = header.partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, self._credentials)

    def snapshot(self) -> dict[str, Any]:
        data = self.data
        return {
            "account": data.account,
            "organizations": list(data.organization_by_id.values()),
            "managed_accounts": [
                {**account, "organizations": data.managed_details[account_id]}
                for account_id, account in data.managed.items()
            ],
            "invoices": [
                {
                    **inv,
                    "organization_usage_line_items": data.org_lines[inv["id"]],
                    "account_usage_line_items": data.account_lines[inv["id"]],
                }
                for inv in data.invoices
            ],
            "rate_limit": {
                "limit": self.window.limit,
                "window_s": self.window.window_s,
                "remaining": self.window.remaining(),
            },
        }

    def reset(self) -> None:
        # The API only reads: the data is as built, so only the rate-limit window starts afresh.
        self.window = self._new_window()

    @staticmethod
    def error_body(status: int, message: str) -> dict[str, Any]:
        return error_body(status, message)


class HuntressGate:
    """Basic auth, then the sliding-window rate limit, then the call-limit headers on the answer."""

    def __init__(self, app: ASGIApp, sandbox: Callable[[], HuntressSandbox]) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        sandbox = self.sandbox()
        window = sandbox.window
        auth = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if not sandbox.authorized(auth):
            message = "Unauthorized: missing or invalid API credentials"
            extra = {"WWW-Authenticate": 'Basic realm="Huntress API"'}
            await _refusal(401, message, window.limit, window.remaining(), extra)(scope, receive, send)
            return
        if not window.admit():
            bare = not sandbox.rate_limit_headers  # the `rate_limit_headers: false` fault
            extra = (
                {"Retry-After": str(math.ceil(window.seconds_until_free()))}
                if sandbox.retry_after and not bare
                else {}
            )
            message = f"Rate limit exceeded: {window.limit} requests per {window.window_s:g} seconds"
            refusal = _refusal(429, message, window.limit, 0, extra, limit_headers=not bare)
            await refusal(scope, receive, send)
            return
        limit_headers = _limit_headers(window.limit, window.limit - len(window.admitted))

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *limit_headers]
            await send(message)

        await self.app(scope, receive, send_with_limits)


def _refusal(
    status: int, message: str, limit: int, remaining: int, extra: dict[str, str], limit_headers: bool = True
) -> Response:
    response = JSONResponse(error_body(status, message), status, headers=extra)
    if limit_headers:
        response.raw_headers.extend(_limit_headers(limit, remaining))
    return response


def _limit_headers(limit: int, remaining: int) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-huntress-api-call-limit", str(limit).encode()),
        (b"x-huntress-api-call-remaining", str(remaining).encode()),
    ]
