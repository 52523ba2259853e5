"""Huntress client: invoices, organization usage lines, organizations (over HttpHook)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import requests

from .api_records import ActualUsage, Invoice, Organization, OrganizationUsage, UsageLine
from .conn_settings import extra_of
from .errors import ApiError, InvoiceChoiceError
from .http import (
    ApiSession,
    RetryPolicy,
    SlidingWindowLimiter,
    check_objects,
    hook_session_factory,
)
from .scrub import secrets_of

log = logging.getLogger(__name__)

PAGE_LIMIT = 500  # the API's maximum
# How far before the billing date an invoice may have been created and still be that date's.
INVOICE_LOOKBACK_DAYS = 3
# Invoice statuses whose charges stand (the spec's eight minus voided, full_refund and draft).
STANDING_STATUSES = ("open", "paid", "partial_refund", "processing", "failed")
# Connection extras that tune the client; HttpHook would otherwise send them as headers.
SETTING_EXTRAS = ("rate_limit_per_minute", "rate_limit_window_s", "max_retries", "max_rate_limit_wait_s")
# The longest one request waits out 429s before it fails: a few windows, for another tool that
# shares the key and eats into the same per-account window (reference: 60/min, sliding).
DEFAULT_MAX_RATE_LIMIT_WAIT_S = 300
CALL_LIMIT_HEADER, CALL_REMAINING_HEADER = "x-huntress-api-call-limit", "x-huntress-api-call-remaining"


class HuntressClient:
    def __init__(self, api: ApiSession, conn_id: str | None = None):
        self.api = api
        # The connection names the account, whose rate-limit window every task of it shares.
        self.conn_id = conn_id

    @classmethod
    def from_connection(
        cls, conn_id: str = "huntress_default", retry: RetryPolicy | None = None
    ) -> HuntressClient:
        """A client for the connection (`http` or `huntress` form: the same fields); `retry`
        replaces the policy (the Test button's quick one)."""
        from .api_hooks import HuntressApiHook

        factory, base_url, conn = hook_session_factory(
            conn_id,
            drop_headers=SETTING_EXTRAS,
            headers={"Accept": "application/json"},
            hook=HuntressApiHook(huntress_conn_id=conn_id),
        )
        extra = extra_of(conn)
        limiter = SlidingWindowLimiter(
            int(extra.get("rate_limit_per_minute", 60)), float(extra.get("rate_limit_window_s", 60))
        )
        retry = retry or RetryPolicy(
            attempts=int(extra.get("max_retries", 6)),
            max_rate_limit_wait=float(extra.get("max_rate_limit_wait_s", DEFAULT_MAX_RATE_LIMIT_WAIT_S)),
        )
        return cls(
            ApiSession(
                "Huntress",
                factory,
                base_url,
                retry=retry,
                limiter=limiter,
                on_response=server_window_tracker(limiter),
                secrets=secrets_of(conn),
            ),
            conn_id,
        )

    # -- generic --------------------------------------------------------------------------------
    def get(self, path: str, label: str, params: Mapping[str, str | int] | None = None) -> Any:
        """One GET's JSON object, as Huntress sent it (Any: each reader checks what it takes)."""
        payload = self.api.request("GET", path, label=label, params=params).payload
        if not isinstance(payload, Mapping):
            raise ApiError(f"Huntress GET {label} returned {type(payload).__name__}, not an object")
        return payload

    def paged(
        self, path: str, key: str, label: str, params: Mapping[str, str | int] | None = None
    ) -> Iterator[Any]:
        """Every item of a list endpoint, following `next_page_token` with the same filters. Each
        is a JSON object (`check_objects`); the method that asked says which record it is.

        `next_page_url` is never requested (it only says whether there is a next page): the token
        goes as a query parameter to the configured site, so no URL of the answer's is ever sent."""
        query = {**(params or {}), "limit": PAGE_LIMIT}
        seen_tokens: set[str] = set()
        while True:
            payload = self.get(path, label, query)
            items = payload.get(key)
            if not isinstance(items, list):
                raise ApiError(f"Huntress GET {label}: response has no '{key}' list")
            check_objects(items, f"Huntress GET {label}")
            yield from items
            pagination = payload.get("pagination") or {}
            if not isinstance(pagination, Mapping):
                raise ApiError(
                    f"Huntress GET {label}: pagination is {type(pagination).__name__}, not an object"
                )
            token = pagination.get("next_page_token")
            if not token or not pagination.get("next_page_url"):
                return
            if token in seen_tokens:  # a server that loops would otherwise page forever
                raise ApiError(f"Huntress GET {label}: page token repeated; paging stopped")
            seen_tokens.add(token)
            query = {**query, "page_token": token}

    # -- what billing needs ----------------------------------------------------------------------
    def invoices(self, source: str) -> list[Invoice]:
        """Usage invoices, newest first. The reseller list has no has_usage filter: filter here."""
        if source == "reseller":
            items = self.paged("v1/reseller/invoices", "invoices", "/v1/reseller/invoices")
        else:
            items = self.paged(
                "v1/invoices",
                "invoices",
                "/v1/invoices",
                {"has_usage": "true", "sort_field": "created_at", "sort_direction": "desc"},
            )
        invoices = [i for i in items if i.get("has_usage") is not False]
        return sorted(invoices, key=lambda i: _created(i) or datetime.min.replace(tzinfo=UTC), reverse=True)

    def invoice(self, source: str, invoice_id: int) -> Invoice:
        path = (
            f"v1/reseller/invoices/{int(invoice_id)}"
            if source == "reseller"
            else f"v1/invoices/{int(invoice_id)}"
        )
        label = "/v1/reseller/invoices/{id}" if source == "reseller" else "/v1/invoices/{id}"
        return self.get(path, label).get("invoice") or Invoice()

    def usage_lines(self, invoice_id: int) -> list[UsageLine]:
        return list(
            self.paged(
                f"v1/reseller/invoices/{int(invoice_id)}/organization_usage_line_items",
                "organization_usage_line_items",
                "/v1/reseller/invoices/{id}/organization_usage_line_items",
            )
        )

    def organizations(self) -> list[Organization]:
        """The organizations of the credentials' own account (never those of managed accounts)."""
        return list(self.paged("v1/organizations", "organizations", "/v1/organizations"))

    def account_organizations(self, account_id: int) -> list[Organization] | None:
        """The organizations of a managed account (spec tag "Reseller"), each with its account_id;
        None when Huntress answers 404: not an account these credentials manage (or none at all).
        A 403 (the key may not read the account: the one refusal the definition documents for this
        path) raises AccountRefused."""
        label = "/v1/accounts/{account_id}/organizations"
        try:
            orgs: list[Organization] = list(
                self.paged(f"v1/accounts/{int(account_id)}/organizations", "organizations", label)
            )
        except ApiError as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                raise AccountRefused(account_id) from exc
            raise
        return [{**o, "account_id": o.get("account_id", account_id)} for o in orgs]

    def invoice_organizations(self, lines: list[UsageLine]) -> list[Organization]:
        """The own account's organizations plus those of every other account the invoice lines name.

        A reseller invoice spans the accounts it manages, and `/v1/organizations` lists only the own
        one; each other account named on a line (`account.id`) is read once, and no account the
        invoice does not name. An account Huntress will not show (404) is skipped with a warning:
        its organizations then match on the line's name alone, like organizations deleted since.
        An account the key may not read (403) stops no other: each organization its lines name is
        returned as the line names it, with `unreadable` saying why, so that reconcile holds its
        lines (unmapped) rather than match them without the account's keys.
        """
        return organizations_of_invoice(self.organizations(), lines, self.account_organizations)

    def organization(self, organization_id: int) -> OrganizationUsage:
        path, label = f"v1/organizations/{int(organization_id)}", "/v1/organizations/{id}"
        return self.get(path, label).get("organization") or OrganizationUsage()

    def account_usage_lines(self, organizations: list[Organization]) -> list[UsageLine]:
        """Usage as of now from each organization's `actual_usages`, shaped like invoice lines.

        Accounts that are not resellers have no per-organization invoice lines; this costs one
        request per organization, paced by the rate limiter.
        """
        lines: list[UsageLine] = []
        for org in organizations:
            detail = self.organization(json_int(org["id"]))
            lines.append(
                {
                    "id": None,
                    "organization": {"id": org.get("id"), "name": org.get("name")},
                    "actual_usage": actual_usage_of(detail.get("actual_usages")),
                }
            )
        return lines


class AccountRefused(ApiError):
    """Huntress answered 403 to a managed account's organizations: the key may not read it."""

    def __init__(self, account_id: int):
        super().__init__(
            f"Huntress refused to list the organizations of account {account_id} (HTTP 403 to "
            f"GET /v1/accounts/{account_id}/organizations): the API key may not read that account",
            status=403,
        )
        self.account_id = account_id


def organizations_of_invoice(
    own: list[Organization],
    lines: list[UsageLine],
    read_account: Callable[[int], list[Organization] | None],
) -> list[Organization]:
    """`own` plus the organizations of every other account the lines name, each read once by
    `read_account` (None: Huntress will not show it; AccountRefused: the key may not read it), as
    HuntressClient.invoice_organizations describes; any source of the account reads may use it."""
    own_ids = {o.get("account_id") for o in own}
    orgs = list(own)
    for account_id in invoice_account_ids(lines):
        if account_id in own_ids:
            continue
        try:
            managed = read_account(account_id)
        except AccountRefused as refused:
            log.warning("%s: its invoice lines are held", refused)
            orgs.extend(refused_organizations(lines, account_id, str(refused)))
            continue
        if managed is None:
            log.warning(
                "Huntress account %s is named on the invoice but its organizations cannot be "
                "read (HTTP 404): its organizations are matched on their names only",
                account_id,
            )
            continue
        orgs.extend(managed)
    return orgs


def refused_organizations(lines: list[UsageLine], account_id: int, why: str) -> list[Organization]:
    """The organizations of a refused account as its invoice lines name them, marked `unreadable`."""
    out: dict[int, Organization] = {}
    for line in lines:
        account, org = line.get("account"), line.get("organization")
        if (
            not isinstance(account, Mapping)
            or account.get("id") != account_id
            or not isinstance(org, Mapping)
        ):
            continue
        org_id = org.get("id")
        if isinstance(org_id, int) and not isinstance(org_id, bool):
            out.setdefault(
                org_id,
                {
                    "id": org_id,
                    "name": org.get("name"),
                    "key": None,
                    "account_id": account_id,
                    "unreadable": why,
                },
            )
    return list(out.values())


def invoice_account_ids(lines: list[UsageLine]) -> list[int]:
    """Distinct integer `account.id`s of invoice lines, ascending (lines without one name none)."""
    ids = set()
    for line in lines:
        account = line.get("account")
        account_id = account.get("id") if isinstance(account, Mapping) else None
        if isinstance(account_id, int) and not isinstance(account_id, bool):
            ids.add(account_id)
    return sorted(ids)


def server_window_tracker(limiter: SlidingWindowLimiter) -> Callable[[requests.Response], None]:
    """Feed Huntress's call-limit headers to the limiter: the window is per account, and requests
    the limiter was not seeded with (another tool on the key, a task killed before it recorded its
    starts) fill it too. Only an answer tells: the shared record (steps) covers the first request."""

    def track(resp: requests.Response) -> None:
        limit, remaining = (resp.headers.get(h) for h in (CALL_LIMIT_HEADER, CALL_REMAINING_HEADER))
        if limit and remaining and limit.isdigit() and remaining.isdigit():
            limiter.observe(int(limit), int(remaining))

    return track


def json_int(value: object) -> int:
    """`int(value)` of an id as an answer gave it, as the client always took one (text "12" is 12);
    a JSON value int() cannot take (null, an object, a list) raises TypeError, as int() does."""
    if isinstance(value, int | float | str):
        return int(value)
    raise TypeError(f"int() argument must be a string or a real number, not '{type(value).__name__}'")


def actual_usage_of(actual: object) -> object:
    """An organization's `actual_usages` → the `actual_usage` of an invoice-shaped line.

    Huntress's definition types `actual_usages` as `string` while its example is an object: both
    are read (a string holding that JSON object). Absent or null: every product absent, as on an
    invoice line. Anything else (text that is no JSON object, a number, a list) is passed on as it
    is, which frames.usage_frame reads as a broken line: each product invalid_usage, never 0.
    """
    if isinstance(actual, str):
        try:
            parsed = json.loads(actual)
        except ValueError:
            return actual
        if not isinstance(parsed, Mapping):
            return actual
        actual = parsed
    if actual is None or isinstance(actual, Mapping):
        return usage_from_actual_usages(actual)
    return actual


def usage_from_actual_usages(actual: object) -> ActualUsage:
    """`actual_usages` → {product: count}, shaped like an invoice line's `actual_usage`.

    Absent products are left out and a null count stays null: as on invoice lines (docs/contract.md §2),
    that is 0 where the company has no live addition for the product and invalid_usage where it
    has one. No identity-provider tenants (`[]`) is 0 identities.
    """
    if not isinstance(actual, Mapping):
        return {}
    out: ActualUsage = {}
    paths: dict[Literal["edr", "sat", "siem"], str] = {
        "edr": "billable_agents_count",
        "sat": "learners_count",
        "siem": "billable_log_sources_count",
    }
    for product, key in paths.items():
        block = actual.get(product)
        if isinstance(block, Mapping) and key in block:
            out[product] = block[key]
    for identities in ("itdr", "ispm"):
        tenants = actual.get(identities)
        if isinstance(tenants, list):
            counts = [t.get("billable_identities_count") if isinstance(t, Mapping) else None for t in tenants]
            # One bad tenant count poisons the sum: pass the bad value on so it is quarantined.
            bad = next(
                (c for c in counts if c is not None and (isinstance(c, bool) or not isinstance(c, int))), None
            )
            if bad is not None:
                out[identities] = bad
            elif None not in counts:
                out[identities] = sum(c for c in counts if c is not None)
            else:
                # Every tenant without a count: the product's count is null. Some with, some without:
                # a partial sum would undercount, so the counts go on as they are (not a count).
                out[identities] = None if all(c is None for c in counts) else counts
    return out


def standing(invoice: Invoice) -> bool:
    """Whether an invoice's charges stand (docs/contract.md §2, reference "Invoices: which one bills").

    Voided, fully refunded and draft invoices never bill. Decision: a status the spec does not list
    (or none) does not stand either; only the spec's other five are taken.
    """
    return invoice.get("status") in STANDING_STATUSES


def select_invoice(
    invoices: list[Invoice], billing_date: date, invoice_id: int | None = None
) -> Invoice | None:
    """The invoice of a billing date: pinned by id, else the standing one created on that date,
    else the newest standing one created within the INVOICE_LOOKBACK_DAYS before it.

    Raises InvoiceChoiceError for a pinned invoice that does not stand, and when two standing
    invoices were created on the day that decides (the billing date, else the newest day of the
    look-back that has one): which one bills cannot be known, so the run fails naming them all.
    """
    if invoice_id is not None:
        pinned = next((i for i in invoices if i.get("id") == invoice_id), None)
        if pinned is not None and not standing(pinned):
            raise InvoiceChoiceError(
                f"invoice {invoice_id} (pinned by the invoice_id param) is {pinned.get('status')!r}: "
                f"only invoices with status {', '.join(STANDING_STATUSES)} bill"
            )
        return pinned
    # (creation day, creation time, invoice) of every standing invoice whose creation can be read
    dated = [(d.date(), d, i) for i in invoices if standing(i) and (d := _created(i)) is not None]
    same_day = [(at, i) for d, at, i in dated if d == billing_date]
    if not same_day:
        window = [
            (d, at, i)
            for d, at, i in dated
            if billing_date - timedelta(days=INVOICE_LOOKBACK_DAYS) <= d < billing_date
        ]
        newest_day = max((d for d, _, _ in window), default=None)
        same_day = [(at, i) for d, at, i in window if d == newest_day]
    if len(same_day) > 1:
        listed = ", ".join(
            f"{i.get('id')} (created {i.get('created_at')}, {i.get('status')})"
            for _, i in sorted(same_day, key=lambda pair: pair[0])
        )
        raise InvoiceChoiceError(
            f"{len(same_day)} standing Huntress usage invoices are of the billing date {billing_date}: {listed}. "
            "Which one bills cannot be known; pin one with the invoice_id param."
        )
    return same_day[0][1] if same_day else None


def undated_invoices(invoices: list[Invoice]) -> list[object]:
    """Ids of invoices whose `created_at` cannot be read: no billing date can ever select them."""
    return [i.get("id") for i in invoices if _created(i) is None]


def newest_invoice_date(invoices: list[Invoice]) -> date | None:
    """The creation date of the newest standing invoice (a voided or draft one proves nothing)."""
    dates = [d.date() for i in invoices if standing(i) and (d := _created(i)) is not None]
    return max(dates) if dates else None


def created_date(invoice: Invoice) -> date | None:
    created = _created(invoice)
    return created.date() if created else None


def _created(invoice: Invoice) -> datetime | None:
    raw = invoice.get("created_at")
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
