"""What Huntress and ConnectWise provide to a run: the methods the steps, push and apply call, as Protocols.

The clients (huntress.HuntressClient, connectwise.ConnectWiseClient) are the real sources, over
HTTP; the sandbox distribution's in-memory sources (billing_sandbox.memory) serve a scenario to
tests without a server. Each protocol lists only what those callers use, so a source that satisfies
it can run every step; the wire (paging, retries, rate limits, credentials) stays the clients' own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date
from typing import TYPE_CHECKING, Protocol

from .api_records import Addition, Agreement, CatalogItem, Company, Invoice, Organization, UsageLine
from .http import RequestStats, RetryPolicy, SlidingWindowLimiter
from .scrub import Scrub


class SourceApi(Protocol):
    """What the callers read of a source's session: its request counts (logs, a step's result), its
    scrubber (an answer's text put into an error), the rate-limit window a Huntress account shares
    across tasks (None: not shared) and the backoff between a lost create and its re-read."""

    @property
    def stats(self) -> RequestStats: ...
    @property
    def scrub(self) -> Scrub: ...
    @property
    def limiter(self) -> SlidingWindowLimiter | None: ...
    @property
    def retry(self) -> RetryPolicy: ...


class HuntressSource(Protocol):
    """Invoices, their organization usage lines, organizations (find_invoice, extract_huntress, apply)."""

    @property
    def api(self) -> SourceApi: ...
    @property
    def conn_id(self) -> str | None: ...  # the account whose rate-limit window tasks share; None: none

    def invoices(self, source: str) -> list[Invoice]: ...
    def usage_lines(self, invoice_id: int) -> list[UsageLine]: ...
    def organizations(self) -> list[Organization]: ...
    def invoice_organizations(self, lines: list[UsageLine]) -> list[Organization]: ...
    def account_usage_lines(self, organizations: list[Organization]) -> list[UsageLine]: ...


class ConnectWiseSource(Protocol):
    """Companies, the catalog, agreements and their additions; the two writes (extract_connectwise,
    push, apply)."""

    @property
    def api(self) -> SourceApi: ...
    @property
    def concurrency(self) -> int: ...  # changes pushed at once
    @property
    def codebase(self) -> str | None: ...  # recorded with the extract, for the push tasks' clients

    def companies(self) -> list[Company]: ...
    def companies_by_id(self, company_ids: Iterable[int]) -> list[Company]: ...
    def catalog(self, identifiers: Iterable[str]) -> list[CatalogItem]: ...
    def agreements(
        self, agreement_types: Sequence[str] = (), company_ids: Iterable[int] | None = None
    ) -> list[Agreement]: ...
    def additions(
        self, agreement_ids: Iterable[int], catalog_identifiers: Iterable[str]
    ) -> list[Addition]: ...
    def addition(self, agreement_id: int, addition_id: int) -> Addition: ...
    def agreement(self, agreement_id: int) -> Agreement: ...
    def agreement_additions(self, agreement_id: int, catalog_identifier: str) -> list[Addition]: ...
    def create_addition(
        self,
        agreement_id: int,
        product_identifier: str,
        quantity: int,
        effective_date: date,
        bill_customer: str = "Billable",
    ) -> Addition: ...
    def set_quantity(self, agreement_id: int, addition_id: int, quantity: int) -> Addition: ...


if TYPE_CHECKING:  # mypy holds the real clients to the protocols (nothing runs here)
    from .connectwise import ConnectWiseClient
    from .huntress import HuntressClient

    def _clients_are_sources(
        h: HuntressClient, c: ConnectWiseClient
    ) -> tuple[HuntressSource, ConnectWiseSource]:
        return h, c
