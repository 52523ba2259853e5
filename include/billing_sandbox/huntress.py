"""The local stand-in for api.huntress.io: the read-only billing routes of the v1 API.

Shapes follow reference/huntress-openapi.json; the choices it leaves open are listed in docs/sandbox.md.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billing_sandbox.common import ADMIN_PREFIX

PRODUCTS = ("edr", "ispm", "itdr", "sat", "siem", "siem_extended_retention")
INVOICE_STATUSES = (
    "open",
    "paid",
    "failed",
    "partial_refund",
    "full_refund",
    "draft",
    "voided",
    "processing",
)
INVOICE_SORT_FIELDS = ("id", "created_at", "updated_at", "status")
ACCOUNT_SORT_FIELDS = ("id", "name", "subdomain", "created_at", "updated_at")
ACCOUNT_STATUSES = ("enabled", "disabled")
ORGANIZATION_SORT_FIELDS = ("id", "created_at", "updated_at", "name", "key")
SORT_DIRECTIONS = ("asc", "desc")
TRUE_WORDS, FALSE_WORDS = ("true", "1"), ("false", "0")

UNIT_PRICE_CENTS = 300  # $3.00 per licensed agent: invoice amount = quantity x this, when not given
DEFAULT_LIMIT, MIN_LIMIT, MAX_LIMIT = 10, 1, 500
DEFAULT_ORG_CREATED_AT = "2025-01-01T00:00:00Z"
TENANT_NAMESPACE = uuid.UUID("6f1c4d2e-8a4b-4c1e-9f65-3b0d6a0e5a11")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "error": message}


# --- data: the scenario turned into API shapes once, at start ---------------------------------------


def _timestamp(value: str) -> str:
    """The API's own format, 2026-11-01T06:00:00Z, whatever RFC 3339 spelling the scenario used."""
    return _parse(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.upper()).astimezone(UTC)


def _utc_words(iso: str) -> str:
    # Account usage line items print dates as "2026-01-10 01:07:08 UTC" (the spec's example), unlike the rest.
    return _parse(iso).strftime("%Y-%m-%d %H:%M:%S UTC")


def _month_before(iso: str) -> str:
    dt = _parse(iso)
    year, month = (dt.year, dt.month - 1) if dt.month > 1 else (dt.year - 1, 12)
    day = min(dt.day, 28)  # every month has a 28th; exactness does not matter for a default
    return dt.replace(year=year, month=month, day=day).strftime("%Y-%m-%dT%H:%M:%SZ")


def _period(raw_invoice: dict[str, Any]) -> tuple[str, str]:
    """The invoice's billing period; by default the month that ends when the invoice is created."""
    created = raw_invoice["created_at"]
    start = raw_invoice.get("period_start")
    return (
        _timestamp(start) if start else _month_before(created),
        _timestamp(raw_invoice.get("period_end", created)),
    )


def _count(value: Any) -> int | None:
    """A usage value that is a plain non-negative integer, else None (bad data stays out of totals)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _assign_ids(explicit: set[int]) -> Iterator[int]:
    n = 0
    while True:
        n += 1
        if n not in explicit:
            yield n


class HuntressData:
    """Every response body the sandbox can give, precomputed: handlers only filter, sort and slice."""

    def __init__(self, section: dict[str, Any]) -> None:
        section = copy.deepcopy(section)
        self.account = self._account(section["account"])
        self.account_ref = _ref(self.account)
        managed = section.get("managed_accounts", [])
        # The accounts a reseller manages (spec tag "Reseller": GET /v1/accounts). Accounts
        # provisioned through a reseller are huntress_supported or partner_supported (spec,
        # Account.support_type); the sandbox says partner_supported unless told.
        self.managed = {raw["id"]: self._account(raw, "partner_supported") for raw in managed}
        # Each organization's own account: what its invoice lines name (reference, "Resellers and
        # their managed accounts"). An organization of no account (deleted since) names the own one.
        self.account_of = {org["id"]: self.account_ref for org in section["organizations"]}
        raw_orgs = {org["id"]: org for org in section["organizations"]}
        for raw in managed:
            for org in raw.get("organizations", []):
                self.account_of[org["id"]] = _ref(self.managed[raw["id"]])
                raw_orgs[org["id"]] = org
        self.invoices: list[dict[str, Any]] = []
        self.invoice_by_id: dict[int, dict[str, Any]] = {}
        self.org_lines: dict[int, list[dict[str, Any]]] = {}
        self.account_lines: dict[int, list[dict[str, Any]]] = {}
        self._build_invoices(section["invoices"], raw_orgs)
        newest = self._newest_usage_by_org(section["invoices"])
        details = [self._organization(org, newest.get(org["id"]), self.account["id"]) for org in section["organizations"]]
        self.organization_by_id = {org["id"]: org for org in details}
        # The list route leaves out actual_usages (the spec's Organization vs OrganizationWithActualProductUsages).
        self.organizations = _listed(details)
        self.managed_details = {
            raw["id"]: [self._organization(org, newest.get(org["id"]), raw["id"]) for org in raw.get("organizations", [])]
            for raw in managed
        }
        self.managed_organizations = {account_id: _listed(orgs) for account_id, orgs in self.managed_details.items()}

    def _account(self, raw: dict[str, Any], support_type: str = "not_applicable") -> dict[str, Any]:
        address = {
            "line1": "1 Sandbox Way",
            "line2": "",
            "city": "Ellicott City",
            "state": "MD",
            "postal_code": "21043",
            "country": "US",
        }
        return {
            "id": raw["id"],
            "name": raw["name"],
            "subdomain": raw["subdomain"],
            "status": raw.get("status", "enabled"),
            "support_type": raw.get("support_type", support_type),
            "neighborhood_watch": raw.get(
                "neighborhood_watch", dict.fromkeys(("edr", "ispm", "itdr", "sat", "siem"), 0)
            ),
            "billing_address": raw.get("billing_address", address),
            "shipping_address": raw.get("shipping_address", address),
        }

    def _build_invoices(
        self, raw_invoices: list[dict[str, Any]], raw_orgs: dict[int, dict[str, Any]]
    ) -> None:
        line_ids = _assign_ids({line["id"] for inv in raw_invoices for line in inv["lines"] if "id" in line})
        usage_ids = _assign_ids(set())
        for raw in raw_invoices:
            invoice = self._invoice(raw)
            self.invoices.append(invoice)
            self.invoice_by_id[invoice["id"]] = invoice
            start, end = _period(raw)
            self.org_lines[invoice["id"]] = [
                self._org_line(line, next(line_ids) if "id" not in line else line["id"], start, end, raw_orgs)
                for line in raw["lines"]
            ]
            self.account_lines[invoice["id"]] = self._account_lines(raw["lines"], start, end, usage_ids)

    @staticmethod
    def _invoice(raw: dict[str, Any]) -> dict[str, Any]:
        edr = (_count(line["actual_usage"].get("edr")) for line in raw["lines"])
        quantity = raw.get("quantity", sum(n for n in edr if n is not None))
        created = _timestamp(raw["created_at"])
        return {
            "id": raw["id"],
            "amount": raw.get("amount", quantity * UNIT_PRICE_CENTS),
            "created_at": created,
            "currency_type": raw.get("currency_type", "usd"),
            "plan": raw.get("plan", "Huntress Partner"),
            "quantity": quantity,
            "receipt": raw.get("receipt", f"https://pay.stripe.com/invoice/invst_sandbox_{raw['id']}"),
            "status": raw["status"],
            "has_usage": raw.get("has_usage", bool(raw["lines"])),
            "updated_at": _timestamp(raw["updated_at"]) if "updated_at" in raw else created,
        }

    def _org_line(
        self, line: dict[str, Any], line_id: int, start: str, end: str, raw_orgs: dict[int, dict[str, Any]]
    ) -> dict[str, Any]:
        org_id = line["organization_id"]
        name = line["organization_name"] if "organization_name" in line else raw_orgs[org_id]["name"]
        return {
            "id": line_id,
            "period_start": _timestamp(line["period_start"]) if "period_start" in line else start,
            "period_end": _timestamp(line["period_end"]) if "period_end" in line else end,
            "account": self.account_of.get(org_id, self.account_ref),
            "organization": {"id": org_id, "name": name},
            "actual_usage": line["actual_usage"],  # verbatim: bad values are the point
        }

    def _account_lines(
        self, lines: list[dict[str, Any]], start: str, end: str, ids: Iterator[int]
    ) -> list[dict[str, Any]]:
        used = {key for line in lines for key in line["actual_usage"]}
        out = []
        for product in (p for p in PRODUCTS if p in used):
            counts = (_count(line["actual_usage"].get(product)) for line in lines)
            actual = sum(n for n in counts if n is not None)
            out.append(
                {
                    "id": next(ids),
                    "period_start": _utc_words(start),
                    "period_end": _utc_words(end),
                    "account": self.account_ref,
                    "product": product,
                    "subscription": {
                        "start_date": _utc_words(start),
                        "end_date": _utc_words(end),
                        "minimum": 0,
                    },
                    "usage": {"billable": actual, "non_billable": 0, "actual": actual},
                }
            )
        return out

    @staticmethod
    def _newest_usage_by_org(
        raw_invoices: list[dict[str, Any]],
    ) -> dict[int, tuple[dict[str, Any], str, str]]:
        """Each org's first line on the newest invoice that has one, with that invoice's period."""
        newest: dict[int, tuple[dict[str, Any], str, str]] = {}
        for raw in sorted(raw_invoices, key=lambda inv: (_parse(inv["created_at"]), inv["id"])):
            start, end = _period(raw)
            seen: set[int] = set()
            for line in raw["lines"]:
                if line["organization_id"] not in seen:
                    seen.add(line["organization_id"])
                    newest[line["organization_id"]] = (line["actual_usage"], start, end)
        return newest

    def _organization(
        self, raw: dict[str, Any], newest: tuple[dict[str, Any], str, str] | None, account_id: int
    ) -> dict[str, Any]:
        usage = newest[0] if newest else {}
        tenant = raw.get("identity_provider_tenant_id", str(uuid.uuid5(TENANT_NAMESPACE, f"org-{raw['id']}")))
        created = _timestamp(raw.get("created_at", DEFAULT_ORG_CREATED_AT))
        derived = {"agents_count": "edr", "billable_identity_count": "itdr", "sat_learner_count": "sat",
                   "logs_sources_count": "siem"}  # fmt: skip
        counts = {field: raw.get(field, _count(usage.get(product, 0))) for field, product in derived.items()}
        org = {
            "id": raw["id"],
            "agents_count": counts["agents_count"],
            "account_id": account_id,
            "created_at": created,
            "incident_reports_count": raw.get("incident_reports_count", 0),
            "key": raw["key"],
            "logs_sources_count": counts["logs_sources_count"],
            "identity_provider_tenant_id": tenant,
            "billable_identity_count": counts["billable_identity_count"],
            "name": raw["name"],
            "report_recipients": raw.get("report_recipients", []),
            "sat_learner_count": counts["sat_learner_count"],
            "updated_at": _timestamp(raw["updated_at"]) if "updated_at" in raw else created,
            # Required by the spec's Organization model without being described there.
            "microsoft_365_tenant_id": raw.get("microsoft_365_tenant_id", tenant),
            "microsoft_365_users_count": raw.get(
                "microsoft_365_users_count", counts["billable_identity_count"] or 0
            ),
            "notify_emails": raw.get("notify_emails", raw.get("report_recipients", [])),
        }
        # A count the data cannot give (bad usage value) is left out rather than invented.
        org = {k: v for k, v in org.items() if v is not None}
        if "actual_usages" in raw:
            org["actual_usages"] = raw["actual_usages"]
        else:
            org["actual_usages"] = _derived_actual_usages(usage, tenant, newest[1:] if newest else None)
        return org


def _ref(account: dict[str, Any]) -> dict[str, Any]:
    """An account as invoice lines name it (spec, OrganizationUsageLineItem.account)."""
    return {k: account[k] for k in ("id", "name", "subdomain")}


def _listed(orgs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in org.items() if k != "actual_usages"} for org in orgs]


def _derived_actual_usages(
    usage: dict[str, Any], tenant: str, period: tuple[str, str] | None
) -> dict[str, Any]:
    """The /v1/organizations/{id} usage block, shaped like the spec's example, values passed through."""
    out: dict[str, Any] = {}
    if "siem" in usage:
        out["siem"] = {"billable_log_sources_count": usage["siem"], "retention": "90/7"}
        if period:
            out["siem"]["previous_billing_cycle"] = {
                "online_gb": 0.0,
                "service_period_start": period[0],
                "service_period_end": period[1],
            }
    if "edr" in usage:
        out["edr"] = {
            "billable_agents_count": usage["edr"],
            "unresponsive_agents_count": 0,
            "outdated_agents_count": 0,
            "isolated_agents_count": 0,
        }
    if "sat" in usage:
        out["sat"] = {"learners_count": usage["sat"]}
    for product in ("ispm", "itdr"):
        if product in usage:
            value = usage[product]
            out[product] = [
                {
                    "type": "microsoft",
                    "identity_provider_tenant_id": tenant,
                    "billable_identities_count": value,
                    "total_identities_count": value,
                }
            ]
    return out


# --- rate limit, auth ---------------------------------------------------------------------------------


class SlidingWindow:
    """At most `limit` admitted requests in any rolling `window_s`; refused requests do not count.

    After `set_foreign(n)`, n phantom requests a minute (another tool using the same key: the
    reference's limit is per account, CONTRACTS §5 `foreign_requests_per_minute`) arrive evenly
    spaced, 60 / n seconds apart, and are admitted like any request while the window has room.
    They are never counted as requests the sandbox served. Decision: "per minute" is per 60 s of
    wall time whatever `window_s` is (a short test window then holds fewer of them).
    """

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.admitted: deque[float] = deque()
        self.foreign_interval: float | None = None
        self.next_foreign = 0.0

    def set_foreign(self, per_minute: float) -> None:
        """Phantom requests from now on (0: none); the first arrives one interval from now."""
        self.foreign_interval = 60.0 / per_minute if per_minute > 0 else None
        self.next_foreign = self.clock() + (self.foreign_interval or 0.0)

    def _expire(self, now: float) -> None:
        cutoff = now - self.window_s
        while self.admitted and self.admitted[0] <= cutoff:
            self.admitted.popleft()

    def _catch_up(self, now: float) -> None:
        """Admit the phantom requests due by `now`, in time order (each sees the window at its time)."""
        step = self.foreign_interval
        if step is None:
            return
        # Phantoms that arrived a full window ago or earlier can no longer hold a slot: skip them.
        if self.next_foreign < now - self.window_s:
            self.next_foreign += step * ((now - self.window_s - self.next_foreign) // step + 1)
        while self.next_foreign <= now:
            self._expire(self.next_foreign)
            if len(self.admitted) < self.limit:
                self.admitted.append(self.next_foreign)
            self.next_foreign += step

    def admit(self) -> bool:
        now = self.clock()
        self._catch_up(now)
        self._expire(now)
        if len(self.admitted) >= self.limit:
            return False
        self.admitted.append(now)
        return True

    def remaining(self) -> int:
        now = self.clock()
        self._catch_up(now)
        self._expire(now)
        return self.limit - len(self.admitted)

    def seconds_until_free(self) -> float:
        return max(0.0, self.admitted[0] + self.window_s - self.clock()) if self.admitted else 0.0


class HuntressSandbox:
    """`app.state.sandbox`: the data served, the rate-limit window, and the admin hooks."""

    # Faults only this API takes (CONTRACTS §5), through POST /_sandbox/faults (common.py).
    FAULT_OPTIONS: dict[str, tuple[dict[str, Any], Any]] = {
        # false: a rate-limit 429 carries no x-huntress-api-call-* headers and no Retry-After. The
        # reference leaves what a real 429 carries undocumented ("A client must recover from a 429
        # with no headers at all"). 200s keep the headers either way: public integrations read them
        # on 200s (reference, "Rate-limit answers"), and nothing public says they are ever missing.
        "rate_limit_headers": ({"type": "boolean"}, True),
        # Another tool using the same key: its requests fill the same per-account sliding window
        # (reference, "Transport": 60 per minute per account).
        "foreign_requests_per_minute": ({"type": "number", "minimum": 0, "maximum": 100_000}, 0),
    }

    def __init__(self, section: dict[str, Any]) -> None:
        self.section = section
        self.retry_after = section.get("rate_limit_retry_after", False)
        self.rate_limit_headers = True
        self.data = HuntressData(section)
        self.window = self._new_window()
        self._credentials = f"{section['api_key']}:{section['api_secret']}".encode()

    def apply_fault_options(self, options: dict[str, Any]) -> None:
        self.rate_limit_headers = options["rate_limit_headers"]
        self.window.set_foreign(options["foreign_requests_per_minute"])

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


# --- query parameters, paging ----------------------------------------------------------------------------


def _filter(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query_params.get(name)
    if value is not None and value not in allowed:
        raise ApiError(400, f"{name} does not have a valid value (one of {', '.join(allowed)})")
    return value


def _choice(request: Request, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = _filter(request, name, allowed)
    return default if value is None else value


def _boolean(request: Request, name: str) -> bool | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if value.lower() in TRUE_WORDS:
        return True
    if value.lower() in FALSE_WORDS:
        return False
    raise ApiError(400, f"{name} is invalid (true or false)")


def _limit(request: Request) -> int:
    value = request.query_params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not re.fullmatch(r"[+-]?\d{1,9}", value.strip()):
        raise ApiError(400, "limit is invalid")
    limit = int(value)
    if not MIN_LIMIT <= limit <= MAX_LIMIT:
        raise ApiError(400, f"limit must be between {MIN_LIMIT} and {MAX_LIMIT}")
    return limit


def _encode_token(tag: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{tag}:{offset}".encode()).rstrip(b"=").decode()


def _decode_token(token: str, tag: str) -> int:
    """The offset a token of this list stands for; anything else is a 400."""
    bad = ApiError(400, "page_token is invalid")
    if not TOKEN_RE.match(token):
        raise bad
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, ValueError):
        raise bad from None
    token_tag, _, offset = text.rpartition(":")
    if token_tag != tag or not offset.isdigit() or int(offset) < 1:
        raise bad
    return int(offset)


def _page(request: Request, items: list[dict[str, Any]], plural: str, tag: str) -> Response:
    limit = _limit(request)
    token = request.query_params.get("page_token") or None
    offset = _decode_token(token, tag) if token else 0
    pagination: dict[str, str] = {}
    if offset + limit < len(items):
        next_token = _encode_token(tag, offset + limit)
        pagination = {
            "next_page_url": _next_page_url(request, next_token, limit),
            "next_page_token": next_token,
        }
    return JSONResponse({plural: items[offset : offset + limit], "pagination": pagination})


def _next_page_url(request: Request, token: str, limit: int) -> str:
    others = [(k, v) for k, v in request.query_params.multi_items() if k not in ("page_token", "limit")]
    query = urlencode([("page_token", token), ("limit", str(limit)), *others])
    return str(request.url.replace(query=query))


def _path_id(request: Request, name: str = "id") -> int:
    raw = request.path_params[name]
    if not re.fullmatch(r"\d{1,18}", raw):
        raise ApiError(400, f"{name} is invalid")
    return int(raw)


def _sorted(items: list[dict[str, Any]], field: str, direction: str) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: (item[field], item["id"]), reverse=direction == "desc")


# --- routes -------------------------------------------------------------------------------------------------


def create_app(section: dict[str, Any], scenario: dict[str, Any]) -> FastAPI:
    """The Huntress API for one scenario section (already validated by scenario.load_scenario)."""
    app = FastAPI(title="Huntress sandbox", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sandbox = HuntressSandbox(section)
    app.add_middleware(HuntressGate, sandbox=lambda: app.state.sandbox)

    def data() -> HuntressData:
        return app.state.sandbox.data

    def get(path: str) -> Callable[[Callable[[Request], Response]], Callable[[Request], Response]]:
        def register(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
            async def endpoint(request: Request) -> Response:
                return handler(request)

            app.add_route(path, endpoint, methods=["GET"], include_in_schema=False)
            return handler

        return register

    @get("/v1/account")
    def account(request: Request) -> Response:
        return JSONResponse({"account": data().account})

    def organization_list(request: Request, items: list[dict[str, Any]], tag: str) -> Response:
        for name in ("name", "key"):
            wanted = request.query_params.get(name)
            if wanted is not None:
                items = [org for org in items if org[name] == wanted]
        field = _choice(request, "sort_field", ORGANIZATION_SORT_FIELDS, "id")
        direction = _choice(request, "sort_direction", SORT_DIRECTIONS, "desc")
        return _page(request, _sorted(items, field, direction), "organizations", tag)

    @get("/v1/organizations")
    def organizations(request: Request) -> Response:
        # The own account's organizations only (reference, "Resellers and their managed accounts").
        return organization_list(request, data().organizations, "organizations")

    # The accounts these (reseller) credentials manage: spec paths /v1/accounts... (tag "Reseller").
    # Decision: the credentials' own account is not among them (CONTRACTS §5: these routes "serve the
    # managed ones"); its organizations are /v1/organizations.
    @get("/v1/accounts")
    def accounts(request: Request) -> Response:
        items = list(data().managed.values())
        status = _filter(request, "status", ACCOUNT_STATUSES)
        for name, wanted in (("status", status), ("name", request.query_params.get("name")),
                             ("subdomain", request.query_params.get("subdomain"))):
            if wanted is not None:
                items = [account for account in items if account[name] == wanted]
        field = _choice(request, "sort_field", ACCOUNT_SORT_FIELDS, "id")
        direction = _choice(request, "sort_direction", SORT_DIRECTIONS, "desc")
        # The spec's Account has no created_at/updated_at to sort by: those orders fall back to id.
        field = "id" if field in ("created_at", "updated_at") else field
        return _page(request, _sorted(items, field, direction), "accounts", "accounts")

    def managed_account_id(request: Request) -> int:
        # The reference: 404 means missing *or* not permitted; an account these credentials do not
        # manage (the own one included) is both, as far as they can tell.
        account_id = _path_id(request, "account_id")
        if account_id not in data().managed:
            raise ApiError(404, f"Account {account_id} not found")
        return account_id

    @get("/v1/accounts/{account_id}")
    def one_account(request: Request) -> Response:
        return JSONResponse({"account": data().managed[managed_account_id(request)]})

    @get("/v1/accounts/{account_id}/organizations")
    def account_organizations(request: Request) -> Response:
        account_id = managed_account_id(request)
        return organization_list(request, data().managed_organizations[account_id], f"organizations/{account_id}")

    @get("/v1/organizations/{id}")
    def organization(request: Request) -> Response:
        org_id = _path_id(request)
        org = data().organization_by_id.get(org_id)
        if org is None:
            raise ApiError(404, f"Organization {org_id} not found")
        return JSONResponse({"organization": org})

    def invoices(request: Request, sortable: bool, tag: str) -> Response:
        items = data().invoices
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

    def invoice_id(request: Request) -> int:
        inv_id = _path_id(request)
        if inv_id not in data().invoice_by_id:
            raise ApiError(404, f"Invoice {inv_id} not found")
        return inv_id

    @get("/v1/invoices")
    def account_invoices(request: Request) -> Response:
        return invoices(request, True, "invoices")

    @get("/v1/reseller/invoices")
    def reseller_invoices(request: Request) -> Response:
        return invoices(request, False, "reseller_invoices")

    @get("/v1/invoices/{id}")
    @get("/v1/reseller/invoices/{id}")
    def one_invoice(request: Request) -> Response:
        return JSONResponse({"invoice": data().invoice_by_id[invoice_id(request)]})

    @get("/v1/reseller/invoices/{id}/organization_usage_line_items")
    def organization_usage(request: Request) -> Response:
        inv_id = invoice_id(request)
        plural = "organization_usage_line_items"
        return _page(request, data().org_lines[inv_id], plural, f"{plural}/{inv_id}")

    @get("/v1/reseller/invoices/{id}/account_usage_line_items")
    def account_usage(request: Request) -> Response:
        inv_id = invoice_id(request)
        plural = "account_usage_line_items"
        return _page(request, data().account_lines[inv_id], plural, f"{plural}/{inv_id}")

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return JSONResponse(error_body(exc.status, exc.message), exc.status)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse(error_body(exc.status_code, exc.detail), exc.status_code, headers=exc.headers)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    return app
