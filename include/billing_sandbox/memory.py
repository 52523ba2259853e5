"""In-memory sources: a scenario served to the sync's steps in-process, as billing_sync.sources describes.

`MemoryHuntress` and `MemoryConnectWise` answer the calls the steps, push and apply make with the
records the clients would read from the sandbox's server, taken from the very state classes that
server serves (HuntressSandbox, ConnectWiseSandbox: the same builders, conditions, `fields`
projections and writes), so a write changes what `snapshot()` shows exactly as a PATCH or POST
would. No socket, no subprocess, no JSON over HTTP: a test that needs a month's data, not the wire,
runs in milliseconds. What only the wire has (paging, headers, rate limits, retries, credentials,
hostile answers) stays tested against the server and the public definitions.

It lives here, in the dev-only sandbox distribution beside the wire sandbox, because it is a
stand-in for Huntress and ConnectWise like the server, built on the server's state, and never part
of a production install; billing_sync only names the protocols it satisfies.

`served` counts the calls each source answered (method name → count), for tests that check what
was asked; `api.stats` counts the same, under "memory <method>".
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from billing_sandbox.connectwise import errors as cw_errors
from billing_sandbox.connectwise.query import Collection, _compiled, _projection, project
from billing_sandbox.connectwise.sandbox import ConnectWiseSandbox
from billing_sandbox.connectwise.values import _BASE_JSON
from billing_sandbox.huntress import errors as huntress_errors
from billing_sandbox.huntress.sandbox import HuntressSandbox
from billing_sandbox.scenario import load_scenario, validate_scenario
from billing_sync import connectwise as cw
from billing_sync.api_records import (
    Addition,
    Agreement,
    CatalogItem,
    Company,
    Invoice,
    NewAddition,
    Organization,
    UsageLine,
)
from billing_sync.errors import ApiError
from billing_sync.http import RequestStats, RetryPolicy, SlidingWindowLimiter
from billing_sync.huntress import (
    AccountRefused,
    actual_usage_of,
    json_int,
    organizations_of_invoice,
)
from billing_sync.scrub import Scrub, scrubber

T = TypeVar("T")
# `_info` links of ConnectWise records name the server's base URL; in memory there is none.
MEMORY_BASE = "memory://connectwise/apis/3.0"


class MemoryApi:
    """The session the callers read (billing_sync.sources.SourceApi): counts, a scrubber of the
    scenario's secrets, no shared rate-limit window, and no wait before a re-read."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.stats = RequestStats()
        self.scrub: Scrub = scrubber(secrets)
        self.limiter: SlidingWindowLimiter | None = None
        self.retry = RetryPolicy(base_delay=0.0, max_delay=0.0)


class _Served:
    """Each answered call counted, by method name, in `served` and in `api.stats`."""

    api: MemoryApi

    def __init__(self) -> None:
        self.served: Counter[str] = Counter()

    def _count(self, name: str) -> None:
        self.served[name] += 1
        self.api.stats.add(f"memory {name}")


def _copy(value: T) -> T:
    """What a client would hold after decoding the answer: a fresh copy, JSON's types only."""
    return cast(T, json.loads(json.dumps(value)))


def _scenario(scenario: Mapping[str, Any] | Path) -> dict[str, Any]:
    """The scenario, checked as the server checks it at start (`python -m billing_sandbox`)."""
    if isinstance(scenario, Path):
        return load_scenario(scenario)
    data = _copy(dict(scenario))
    validate_scenario(data)
    return data


# -- Huntress ------------------------------------------------------------------------------------
class MemoryHuntress(_Served):
    """The Huntress API of a scenario (HuntressSandbox's data), as HuntressClient reads it."""

    def __init__(self, sandbox: HuntressSandbox, conn_id: str | None = None) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.api = MemoryApi([str(sandbox.section["api_secret"])])
        self.conn_id = conn_id  # None: no account window is shared (steps._huntress_window)

    def invoices(self, source: str) -> list[Invoice]:
        """Usage invoices, newest first (the client filters has_usage and sorts by created_at)."""
        self._count("invoices")
        items = [i for i in self.sandbox.data.invoices if i.get("has_usage") is not False]
        items.sort(key=lambda i: i["id"], reverse=True)  # the server's order, the sort's tie-breaker
        items.sort(key=lambda i: _created(i.get("created_at")), reverse=True)
        return cast(list[Invoice], _copy(items))

    def usage_lines(self, invoice_id: int) -> list[UsageLine]:
        self._count("usage_lines")
        lines = self.sandbox.data.org_lines.get(int(invoice_id))
        if lines is None:
            raise _huntress_error(huntress_errors.ApiError(404, f"Invoice {invoice_id} not found"))
        return cast(list[UsageLine], _copy(lines))

    def organizations(self) -> list[Organization]:
        """The own account's organizations, in the server's order (id descending)."""
        self._count("organizations")
        return cast(list[Organization], _copy(_by_id_desc(self.sandbox.data.organizations)))

    def account_organizations(self, account_id: int) -> list[Organization] | None:
        """A managed account's organizations; None for one not managed (404); AccountRefused (403)."""
        self._count("account_organizations")
        data = self.sandbox.data
        if account_id not in data.managed:
            return None
        if account_id in data.forbidden:
            refusal = ApiError(f"Huntress: account {account_id} refused", status=403)
            raise AccountRefused(account_id) from refusal
        orgs = _copy(_by_id_desc(data.managed_organizations[account_id]))
        return [cast(Organization, {**o, "account_id": o.get("account_id", account_id)}) for o in orgs]

    def invoice_organizations(self, lines: list[UsageLine]) -> list[Organization]:
        """The own account's organizations plus those of every other account the lines name, as
        HuntressClient.invoice_organizations reads them (a refused account: its lines' organizations,
        `unreadable`; an account not shown: skipped)."""
        return organizations_of_invoice(self.organizations(), lines, self.account_organizations)

    def account_usage_lines(self, organizations: list[Organization]) -> list[UsageLine]:
        """Usage as of now from each organization's `actual_usages`, shaped like invoice lines."""
        lines: list[UsageLine] = []
        for org in organizations:
            self._count("organization")
            org_id = json_int(org["id"])
            detail = self.sandbox.data.organization_by_id.get(org_id)
            if detail is None:
                raise _huntress_error(huntress_errors.ApiError(404, f"Organization {org_id} not found"))
            actual = _copy(detail.get("actual_usages"))
            if self.sandbox.actual_usages_as_string and actual is not None:
                actual = json.dumps(actual)  # the `actual_usages_as_string` fault, as the server serves it
            lines.append(
                {
                    "id": None,
                    "organization": {"id": org.get("id"), "name": org.get("name")},
                    "actual_usage": actual_usage_of(actual),
                }
            )
        return lines


def _created(raw: object) -> datetime:
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.min.replace(tzinfo=UTC)


def _by_id_desc(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(items, key=lambda item: item["id"], reverse=True)


def _huntress_error(exc: huntress_errors.ApiError) -> ApiError:
    return ApiError(f"Huntress: HTTP {exc.status}: {exc.message}", status=exc.status, body=exc.message)


# -- ConnectWise ---------------------------------------------------------------------------------
class MemoryConnectWise(_Served):
    """The ConnectWise Manage API of a scenario (ConnectWiseSandbox), as ConnectWiseClient reads and
    writes it: the same conditions and `fields` the client sends, the security role's refusals,
    and writes through the sandbox's own operations."""

    def __init__(self, sandbox: ConnectWiseSandbox, concurrency: int = 4) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.api = MemoryApi([str(sandbox.section["private_key"])])
        self.concurrency = concurrency
        self.codebase: str | None = sandbox.codebase
        self._lock = threading.Lock()  # push runs `concurrency` calls at once, as on the server

    @contextmanager
    def _call(self, name: str, method: str, route: str, agreement_id: int | None = None) -> Iterator[None]:
        """One call: counted, checked against the role, run under the sandbox's lock, its refusal
        raised as the client raises an answer it cannot use (billing_sync.errors.ApiError)."""
        with self._lock:
            self._count(name)
        try:
            with self.sandbox.lock:
                params = {} if agreement_id is None else {"id": str(agreement_id)}
                self.sandbox.security.check(method, route, params)
                yield
        except cw_errors.ApiError as exc:
            message = f"ConnectWise {method} {route}: HTTP {exc.status}: {exc.message}"
            raise ApiError(message, status=exc.status, body=exc.body()) from None

    def _list(
        self, coll: Collection, ids: list[int] | None, conditions: str | None, fields: str
    ) -> list[dict[str, Any]]:
        """Every record of `coll` (or of its `ids` subset) the conditions select, projected on
        `fields`, in the server's forward-only order (by id)."""
        if coll is self.sandbox.agreements and ids is None:
            ids = self.sandbox.security.visible_agreements(coll.ids)
        predicate = _compiled(conditions, coll.resource) if conditions else None
        chosen = [
            i for i in (coll.ids if ids is None else sorted(ids)) if not predicate or predicate(coll.by_id[i])
        ]
        tree = _projection(fields, coll)
        return [_record(project(coll.by_id[i], tree) if tree else coll.by_id[i]) for i in chosen]

    def companies(self) -> list[Company]:
        with self._call("companies", "GET", "/company/companies"):
            found = self._list(self.sandbox.companies, None, "deletedFlag = false", cw.COMPANY_FIELDS)
        return cast(list[Company], found)

    def companies_by_id(self, company_ids: Iterable[int]) -> list[Company]:
        out: list[dict[str, Any]] = []
        for listed in cw.id_lists(company_ids):
            with self._call("companies_by_id", "GET", "/company/companies"):
                cond = f"id in {listed} and deletedFlag = false"
                out += self._list(self.sandbox.companies, None, cond, cw.COMPANY_FIELDS)
        return cast(list[Company], out)

    def catalog(self, identifiers: Iterable[str]) -> list[CatalogItem]:
        with self._call("catalog", "GET", "/procurement/catalog"):
            cond = f"identifier in {cw.in_list(identifiers)}"
            found = self._list(self.sandbox.catalog, None, cond, cw.CATALOG_FIELDS)
        return cast(list[CatalogItem], found)

    def agreements(
        self, agreement_types: Sequence[str] = (), company_ids: Iterable[int] | None = None
    ) -> list[Agreement]:
        cond = 'agreementStatus = "Active" and cancelledFlag = false'
        if agreement_types:
            cond += f" and type/name in {cw.in_list(agreement_types)}"
        conditions = (
            [cond]
            if company_ids is None
            else [f"{cond} and company/id in {ids}" for ids in cw.id_lists(company_ids)]
        )
        out: list[dict[str, Any]] = []
        for one in conditions:
            with self._call("agreements", "GET", "/finance/agreements"):
                out += self._list(self.sandbox.agreements, None, one, cw.AGREEMENT_FIELDS)
        return cast(list[Agreement], out)

    def _agreement_additions(self, name: str, agreement_id: int, cond: str) -> list[Addition]:
        with self._call(name, "GET", "/finance/agreements/{id}/additions", agreement_id):
            self.sandbox.agreement(agreement_id)
            rows = self._list(
                self.sandbox.additions, self.sandbox.by_agreement[agreement_id], cond, cw.ADDITION_FIELDS
            )
        for r in rows:  # as the client: `fields` trims agreementId on some versions
            r.setdefault("agreementId", agreement_id)
        return cast(list[Addition], rows)

    def additions(self, agreement_ids: Iterable[int], catalog_identifiers: Iterable[str]) -> list[Addition]:
        cond = f"product/identifier in {cw.in_list(catalog_identifiers)}"
        return [
            row for aid in agreement_ids for row in self._agreement_additions("additions", int(aid), cond)
        ]

    def agreement_additions(self, agreement_id: int, catalog_identifier: str) -> list[Addition]:
        cond = f"product/identifier = {cw.quote(catalog_identifier)}"
        return self._agreement_additions("agreement_additions", int(agreement_id), cond)

    def addition(self, agreement_id: int, addition_id: int) -> Addition:
        route = "/finance/agreements/{id}/additions/{additionId}"
        with self._call("addition", "GET", route, agreement_id):
            found = _record(self.sandbox.addition(int(agreement_id), int(addition_id)))
        return cast(Addition, found)

    def agreement(self, agreement_id: int) -> Agreement:
        with self._call("agreement", "GET", "/finance/agreements/{id}", agreement_id):
            coll = self.sandbox.agreements
            tree = _projection(cw.AGREEMENT_FIELDS, coll)
            record = self.sandbox.agreement(int(agreement_id))
            found = _record(project(record, tree) if tree else record)
        return cast(Agreement, found)

    def create_addition(
        self,
        agreement_id: int,
        product_identifier: str,
        quantity: int,
        effective_date: date,
        bill_customer: str = "Billable",
    ) -> Addition:
        body: NewAddition = {
            "product": {"identifier": product_identifier},
            "quantity": int(quantity),
            "effectiveDate": f"{effective_date.isoformat()}T00:00:00Z",
            "billCustomer": bill_customer,
        }
        with self._call("create_addition", "POST", "/finance/agreements/{id}/additions", agreement_id):
            made = _record(self.sandbox.create_addition(int(agreement_id), _copy(body)))
        return cast(Addition, made)

    def set_quantity(self, agreement_id: int, addition_id: int, quantity: int) -> Addition:
        patch = [{"op": "replace", "path": "quantity", "value": int(quantity)}]
        route = "/finance/agreements/{id}/additions/{additionId}"
        with self._call("set_quantity", "PATCH", route, agreement_id):
            written = _record(self.sandbox.patch_addition(int(agreement_id), int(addition_id), patch))
        return cast(Addition, written)


def _record(value: Any) -> dict[str, Any]:
    """A record as the client decodes it: a copy, its `_info` links on the memory base."""
    return cast(dict[str, Any], json.loads(json.dumps(value).replace(_BASE_JSON, MEMORY_BASE)))


# -- both ----------------------------------------------------------------------------------------
class MemorySources:
    """A scenario's two sources over fresh sandbox state (`huntress`, `connectwise`); the state
    objects are the server's, for `snapshot()` and for edits "by someone else" between steps."""

    def __init__(self, scenario: Mapping[str, Any] | Path, *, concurrency: int = 4) -> None:
        self.scenario = _scenario(scenario)
        self.huntress_state = HuntressSandbox(self.scenario["huntress"])
        self.connectwise_state = ConnectWiseSandbox(self.scenario["connectwise"], self.scenario)
        self.huntress = MemoryHuntress(self.huntress_state)
        self.connectwise = MemoryConnectWise(self.connectwise_state, concurrency)

    def connectwise_factory(self) -> Callable[[], MemoryConnectWise]:
        """apply.run's `connectwise` argument: the one ConnectWise source, built on demand."""
        return lambda: self.connectwise
