"""ConnectWise Manage client: companies, catalog, agreements, additions, quantity PATCH (over HttpHook)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any, cast

import requests

from .api_records import (
    Addition,
    Agreement,
    AgreementType,
    CatalogItem,
    Company,
    NewAddition,
    PatchOperation,
    SecurityLevels,
    SystemInfo,
)
from .conn_settings import connectwise_credentials, extra_of
from .errors import ApiError, CredentialsError
from .http import (
    RETRYABLE_STATUS,
    ApiResponse,
    ApiSession,
    RetryPolicy,
    check_objects,
    hook_session_factory,
)

PAGE_SIZE = 1000  # the API's maximum
ID_CHUNK = 100  # ids in one `id in (...)` condition: keeps the query string short
# A released version that public clients pin: ai-connor/connectwise (a Go client generated from
# ConnectWise's own OpenAPI document) sends `version=2025.1`. ConnectWise answers every version with
# the models as of that release (developer guide, "PSA Versioning"), so a pinned version keeps the
# shapes still; the connection's extra `api_version` overrides it.
API_VERSION = "2025.1"
VERSION_FORMAT = re.compile(r"\d{4}\.\d{1,2}")  # 2019.1 … 2025.16: the PSA release numbers
# Connection extras that are settings: HttpHook would otherwise send each one as a header.
SETTING_EXTRAS = ("codebase", "max_retries", "api_version")
# 409 is "record possibly in use" (reference, Errors): transient, so retried with the same bounded
# backoff as a 429 before a write is given up as push_rejected. Huntress documents no 409.
CONNECTWISE_RETRYABLE = RETRYABLE_STATUS | {409}

COMPANY_FIELDS = "id,identifier,name,deletedFlag"
AGREEMENT_FIELDS = "id,name,type,company,agreementStatus,cancelledFlag,startDate,endDate"
# The addition's own status is its `agreementStatus`: ConnectWise has no `additionStatus`
# (pyconnectwise's Addition model, generated from ConnectWise's OpenAPI).
ADDITION_FIELDS = (
    "id,agreementId,product/identifier,quantity,unitPrice,effectiveDate,cancelledDate,"
    "agreementStatus,lessIncluded"
)
# `price` is the catalog item's default unit price (pyconnectwise's CatalogItem model, generated from
# ConnectWise's OpenAPI): the fallback price of a key without an addition price, read with the item.
CATALOG_FIELDS = "id,identifier,description,inactiveFlag,price"
# The settings page's picker: what a person chooses an item by (the price is the run's business).
PICKER_FIELDS = "id,identifier,description,inactiveFlag"
AGREEMENT_TYPE_FIELDS = "id,name,inactiveFlag"
CREDENTIALS_HINT = "check the company id / credentials of the connection"


def quote(value: str) -> str:
    """A string literal for the conditions grammar.

    Nothing public shows ConnectWise accepting backslash escapes, so a value holding `"` or `\\`
    cannot be written safely: it is refused, never escaped (config.py refuses such identifiers
    and agreement types when a run resolves its settings).
    """
    text = str(value)
    if '"' in text or "\\" in text:
        raise ValueError(f"{text!r} cannot be quoted in ConnectWise conditions (a double quote or backslash)")
    return f'"{text}"'


def id_lists(ids: Iterable[int]) -> Iterator[str]:
    """The distinct ids as `(1,2,3)` lists of at most ID_CHUNK each, in order, for `x in (...)`."""
    ordered = sorted({int(i) for i in ids})
    for at in range(0, len(ordered), ID_CHUNK):
        yield "(" + ",".join(str(i) for i in ordered[at : at + ID_CHUNK]) + ")"


def in_list(values: Iterable[str]) -> str:
    return "(" + ",".join(quote(v) for v in values) + ")"


class ConnectWiseClient:
    def __init__(self, api: ApiSession, concurrency: int = 4, codebase: str | None = None):
        self.api = api
        self.concurrency = concurrency
        self.codebase = codebase
        self._answered = False  # an authenticated request has succeeded (see `_request`)

    @classmethod
    def from_connection(
        cls,
        conn_id: str = "connectwise_default",
        concurrency: int = 4,
        codebase: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> ConnectWiseClient:
        """A client for the connection (the `http` or the `connectwise_manage` form, conn_settings);
        `codebase` (e.g. from an earlier task) saves its discovery; `retry` replaces the policy
        (the Test button's quick one)."""
        from .api_hooks import ConnectWiseApiHook

        # ConnectWiseApiHook sends Basic companyId+publicKey:privateKey and the `clientId` header.
        hook_factory, base_url, conn = hook_session_factory(
            conn_id,
            drop_headers=SETTING_EXTRAS,
            headers={"pagination-type": "forward-only"},
            hook=ConnectWiseApiHook(connectwise_conn_id=conn_id),
        )
        creds = connectwise_credentials(conn, conn_id)
        extra = extra_of(conn)
        version = api_version(conn_id, extra.get("api_version"))
        accept = f"application/vnd.connectwise.com+json; version={version}"

        def factory() -> requests.Session:
            session = hook_factory()
            session.headers["Accept"] = accept
            return session

        retry = retry or RetryPolicy(attempts=int(extra.get("max_retries", 6)))
        secrets = creds.secrets(extra)
        site = ApiSession(
            "ConnectWise", factory, base_url, retry=retry, retry_status=CONNECTWISE_RETRYABLE, secrets=secrets
        )
        codebase = codebase or creds.codebase or discover_codebase(site, creds.login)
        api = ApiSession(
            "ConnectWise",
            factory,
            f"{site.base_url}/{codebase.strip('/')}/apis/3.0",
            retry=retry,
            retry_status=CONNECTWISE_RETRYABLE,
            secrets=secrets,
        )
        api.stats = site.stats  # one count of every request, discovery included
        return cls(api, concurrency, codebase)

    def _request(self, method: str, path: str, *, label: str, **kwargs: Any) -> ApiResponse:
        """`api.request`, except that a 404 before any authenticated request succeeded is named as
        what it usually is: ConnectWise cloud answers bad credentials with a 404 as well as a 401
        (reference, Errors; developer guide, "PSA API Requests")."""
        try:
            resp = self.api.request(method, path, label=label, **kwargs)
        except ApiError as exc:
            if exc.status == 404 and not self._answered:
                raise CredentialsError(
                    f"ConnectWise {method} {label} answered HTTP 404 to the first "
                    f"authenticated request; ConnectWise cloud answers bad credentials "
                    f"that way: {CREDENTIALS_HINT} (and its codebase), unless the record "
                    "is gone",
                    status=404,
                    body=exc.body,
                ) from None
            raise
        self._answered = True
        return resp

    # -- reads -----------------------------------------------------------------------------------
    def paged(
        self, path: str, label: str, conditions: str | None = None, fields: str | None = None
    ) -> Iterator[Any]:
        """Every record of a list, with forward-only paging (follows the `Link` rel="next": only its
        path and query, joined to the configured site; `ApiSession.link` refuses any other link).
        Each is a JSON object (`check_objects`); the method that asked says which record it is."""
        first: dict[str, str | int] = {"pageSize": PAGE_SIZE}
        if conditions:
            first["conditions"] = conditions
        if fields:
            first["fields"] = fields
        params: dict[str, str | int] | None = first
        url: str | None = path
        seen: set[str | None] = set()
        while url:
            resp = self._request("GET", url, label=label, params=params)
            if not isinstance(resp.payload, list):
                raise ApiError(f"ConnectWise GET {label} returned {type(resp.payload).__name__}, not a list")
            check_objects(resp.payload, f"ConnectWise GET {label}")
            yield from resp.payload
            found = next_link(resp.response)
            url = None if found is None else self.api.link(found)
            if url in seen:
                raise ApiError(f"ConnectWise GET {label}: next link repeated; paging stopped")
            seen.add(url)
            params = None  # the next link carries every parameter

    def get(self, path: str, label: str, params: Mapping[str, str | int] | None = None) -> Any:
        """One GET's JSON answer, unpaged, as ConnectWise sent it (Any: each reader checks it)."""
        return self._request("GET", path, label=label, params=dict(params or {})).payload

    def system_info(self) -> SystemInfo:
        """`GET /system/info` (the site's version): the cheapest authenticated read, for the Test button."""
        payload = self._request("GET", "system/info", label="/system/info").payload
        if not isinstance(payload, Mapping):
            raise ApiError(f"ConnectWise GET /system/info returned {type(payload).__name__}, not an object")
        return cast(SystemInfo, dict(payload))  # an object: every field of the record may be absent

    def my_security(self) -> list[SecurityLevels] | None:
        """`GET /system/mySecurity`: the API member's own levels, one row per module function (the
        answer's objects); None when it answers no list (preflight then proves what it can by reads)."""
        payload = self.get("system/mySecurity", "/system/mySecurity", {"pageSize": 1000})
        if not isinstance(payload, list):
            return None
        # An object: every field of the record may be absent, and preflight checks each it reads.
        return [cast(SecurityLevels, r) for r in payload if isinstance(r, Mapping)]

    def companies(self) -> list[Company]:
        return list(
            self.paged("company/companies", "/company/companies", "deletedFlag = false", COMPANY_FIELDS)
        )

    def companies_by_id(self, company_ids: Iterable[int]) -> list[Company]:
        """The companies of these ids (not deleted), as `companies` reads them: an apply's few.

        `id in (...)` with numbers: the conditions grammar of the reference (Conditions) takes a
        list operator over any value type."""
        out: list[Company] = []
        for listed in id_lists(company_ids):
            out += self.paged(
                "company/companies",
                "/company/companies",
                f"id in {listed} and deletedFlag = false",
                COMPANY_FIELDS,
            )
        return out

    def catalog(self, identifiers: Iterable[str]) -> list[CatalogItem]:
        return list(
            self.paged(
                "procurement/catalog",
                "/procurement/catalog",
                f"identifier in {in_list(identifiers)}",
                CATALOG_FIELDS,
            )
        )

    def catalog_page(self, limit: int = PAGE_SIZE) -> tuple[list[CatalogItem], bool]:
        """The first `limit` catalog items (by id, inactive ones too) and whether they are all of
        them: the settings page's picker, one request whatever the catalog's size.

        `GET /procurement/catalog` with `fields` and `pageSize` (getProcurementCatalog in
        ConnectWise's definition, /work/shared/reference/openapi/connectwise-manage-2026.4-get.json);
        a page with a rel="next" link, or a full one, says there are more."""
        size = max(1, min(int(limit), PAGE_SIZE))
        params: dict[str, str | int] = {"pageSize": size, "fields": PICKER_FIELDS}
        resp = self._request("GET", "procurement/catalog", label="/procurement/catalog", params=params)
        if not isinstance(resp.payload, list):
            raise ApiError(
                f"ConnectWise GET /procurement/catalog returned {type(resp.payload).__name__}, not a list"
            )
        check_objects(resp.payload, "ConnectWise GET /procurement/catalog")
        whole = next_link(resp.response) is None and len(resp.payload) < size
        return list(resp.payload), whole

    def agreement_types(self) -> list[AgreementType]:
        """Every agreement type (id, name, inactiveFlag): `GET /finance/agreements/types`
        (getFinanceAgreementsTypes in ConnectWise's definition,
        /work/shared/reference/openapi/connectwise-manage-2026.4-get.json), paged as every list is."""
        return list(
            self.paged("finance/agreements/types", "/finance/agreements/types", None, AGREEMENT_TYPE_FIELDS)
        )

    def agreements(
        self, agreement_types: Sequence[str] = (), company_ids: Iterable[int] | None = None
    ) -> list[Agreement]:
        """Active, not cancelled agreements (of the given types): the only ones that can be live.
        `company_ids`: only those companies' agreements (an apply's; `company/id in (...)`)."""
        cond = 'agreementStatus = "Active" and cancelledFlag = false'
        if agreement_types:
            cond += f" and type/name in {in_list(agreement_types)}"
        if company_ids is None:
            return list(self.paged("finance/agreements", "/finance/agreements", cond, AGREEMENT_FIELDS))
        out: list[Agreement] = []
        for listed in id_lists(company_ids):
            out += self.paged(
                "finance/agreements",
                "/finance/agreements",
                f"{cond} and company/id in {listed}",
                AGREEMENT_FIELDS,
            )
        return out

    def additions(self, agreement_ids: Iterable[int], catalog_identifiers: Iterable[str]) -> list[Addition]:
        """The additions of mapped products on each agreement, `concurrency` requests in flight.

        There is no endpoint across agreements; one list request per agreement is the floor.
        """
        cond = f"product/identifier in {in_list(catalog_identifiers)}"

        def one(agreement_id: int) -> list[Addition]:
            rows: list[Addition] = list(
                self.paged(
                    f"finance/agreements/{int(agreement_id)}/additions",
                    "/finance/agreements/{id}/additions",
                    cond,
                    ADDITION_FIELDS,
                )
            )
            for r in rows:  # `fields` trims agreementId on some versions; we know it
                r.setdefault("agreementId", agreement_id)
            return rows

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return [row for rows in pool.map(one, list(agreement_ids)) for row in rows]

    def addition(self, agreement_id: int, addition_id: int) -> Addition:
        resp = self._request(
            "GET",
            f"finance/agreements/{int(agreement_id)}/additions/{int(addition_id)}",
            label="/finance/agreements/{id}/additions/{additionId}",
        )
        if not isinstance(resp.payload, Mapping):
            raise ApiError("ConnectWise GET addition returned no object")
        return cast(Addition, dict(resp.payload))  # an object: every field of the record may be absent

    def agreement(self, agreement_id: int) -> Agreement:
        """One agreement, as `agreements` reads it (status, company, dates)."""
        resp = self._request(
            "GET",
            f"finance/agreements/{int(agreement_id)}",
            label="/finance/agreements/{id}",
            params={"fields": AGREEMENT_FIELDS},
        )
        if not isinstance(resp.payload, Mapping):
            raise ApiError("ConnectWise GET agreement returned no object")
        return cast(Agreement, dict(resp.payload))  # an object: every field of the record may be absent

    def agreement_additions(self, agreement_id: int, catalog_identifier: str) -> list[Addition]:
        """The additions of one product on one agreement, read fresh (before creating one)."""
        rows: list[Addition] = list(
            self.paged(
                f"finance/agreements/{int(agreement_id)}/additions",
                "/finance/agreements/{id}/additions",
                f"product/identifier = {quote(catalog_identifier)}",
                ADDITION_FIELDS,
            )
        )
        for r in rows:
            r.setdefault("agreementId", agreement_id)
        return rows

    # -- writes ----------------------------------------------------------------------------------
    def create_addition(
        self,
        agreement_id: int,
        product_identifier: str,
        quantity: int,
        effective_date: date,
        bill_customer: str = "Billable",
    ) -> Addition:
        """POST a new addition (docs/contract.md §5); returns the record ConnectWise answers with.

        The body names only fields of ConnectWise's `AgreementAddition` model, whose required ones are
        `product` (an IvItemReference: `id` or `identifier`) and `billCustomer` (Billable | DoNotBill |
        NoCharge): pyconnectwise's `AdditionModel` (src/pyconnectwise/models/manage/AdditionModel.py,
        generated from ConnectWise's OpenAPI) and the finance client generated from the same document
        (spinen/connectwise-finance-php-client, docs/Model/Addition.md, "product" and
        "bill_customer" without [optional]). `effectiveDate` is midnight UTC of `effective_date`.

        Sent once, never retried here: a POST whose answer is lost may have created the addition, and
        a blind second POST would create another. The caller (push.create_one) settles a failure by
        reading the agreement's additions before it decides to send again.
        """
        body: NewAddition = {
            "product": {"identifier": product_identifier},
            "quantity": int(quantity),
            "effectiveDate": f"{effective_date.isoformat()}T00:00:00Z",
            "billCustomer": bill_customer,
        }
        resp = self._request(
            "POST",
            f"finance/agreements/{int(agreement_id)}/additions",
            label="/finance/agreements/{id}/additions",
            json_body=body,
            attempts=1,
        )
        if not isinstance(resp.payload, Mapping):
            raise ApiError("ConnectWise POST addition answered no object")
        return cast(Addition, dict(resp.payload))  # an object: every field of the record may be absent

    def set_quantity(self, agreement_id: int, addition_id: int, quantity: int) -> Addition:
        """PATCH the quantity; the addition ConnectWise answers with (empty when it answers no object)."""
        patch: list[PatchOperation] = [{"op": "replace", "path": "quantity", "value": int(quantity)}]
        resp = self._request(
            "PATCH",
            f"finance/agreements/{int(agreement_id)}/additions/{int(addition_id)}",
            label="/finance/agreements/{id}/additions/{additionId}",
            json_body=patch,
        )
        return cast(Addition, dict(resp.payload)) if isinstance(resp.payload, Mapping) else Addition()


def api_version(conn_id: str, written: object) -> str:
    """The connection's extra `api_version` as written (text such as "2025.1"), else API_VERSION."""
    # The typed form's field may be saved empty: that is the default, as an absent key is.
    version = written or API_VERSION
    # A JSON number would lose digits (2025.10 is 2025.1), so only text is taken.
    if not isinstance(version, str) or not VERSION_FORMAT.fullmatch(version.strip()):
        raise CredentialsError(
            f"connection {conn_id}: extra.api_version must be a release such as "
            f'"{API_VERSION}" (text, YYYY.N), got {version!r}'
        )
    return version.strip()


def next_link(resp: requests.Response) -> str | None:
    """The rel="next" URL as sent (None: this is the last page), for `ApiSession.link` to judge."""
    # ConnectWise sends `Link` on every forward-only page; the last one has no rel="next".
    link = resp.links.get("next") if resp.headers.get("Link") else None
    return None if link is None else str(link.get("url", ""))


def discover_codebase(site: ApiSession, login: str) -> str:
    """The codebase from `/login/companyinfo/{companyId}`, e.g. "v4_6_release/"."""
    company_id = login.split("+", 1)[0]
    if not company_id or "+" not in login:
        raise CredentialsError("ConnectWise connection login must be 'companyId+publicKey'")
    payload = site.request(
        "GET", f"login/companyinfo/{company_id}", label="/login/companyinfo/{companyId}"
    ).payload
    if payload is None:
        # An unknown company is a 200 with the body `null`, not a 404 (reference, Errors).
        raise CredentialsError(
            f"ConnectWise /login/companyinfo/{{companyId}} answered null: ConnectWise "
            f"knows no such company; {CREDENTIALS_HINT} (login = companyId+publicKey)"
        )
    codebase = payload.get("Codebase") if isinstance(payload, Mapping) else None
    if not isinstance(codebase, str) or not codebase:
        raise ApiError(
            "ConnectWise /login/companyinfo gave no Codebase; set extra.codebase on the connection"
        )
    return codebase
