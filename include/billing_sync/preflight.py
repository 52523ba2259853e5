"""Preflight: read-only checks of what a tenant's first run needs, one row each (docs/contract.md §1).

Credentials and codebase (the connections' Test: conn_check); the Huntress account; the invoice of
the coming billing date, else the newest; every managed account that invoice names; each mapped
catalog item (exists, active); each configured agreement type; the ConnectWise API member's
permissions against the role Huntress documents for its billing sync (Finance → Agreements: Inquire
All, Edit All or customized, Add and Delete None; Procurement → Product Catalog: Inquire All;
creating an approved addition also needs Add).

Nothing here writes. The permissions are read from `GET /system/mySecurity` (the member's own
levels; security.py of the sandbox names the public clients that call it). Where that cannot be
read, Inquire is proven by a read that succeeds and the other levels are `unverified`, with where
to look, rather than guessed: no read-only call proves a right to write.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from .api_records import Account, SecurityLevels
from .config import Settings
from .connectwise import ConnectWiseClient
from .errors import ApiError, InvoiceChoiceError
from .huntress import (
    AccountRefused,
    HuntressClient,
    created_date,
    invoice_account_ids,
    json_int,
    select_invoice,
    standing,
)
from .tenants import Tenant

OK, FAIL, UNVERIFIED = "ok", "fail", "unverified"
ROLE_PAGE = "ConnectWise: System → Security Roles → the API member's role"
MEMBER_PAGE = "ConnectWise: System → Members → API Members → the member's Role ID"


@dataclass(frozen=True)
class Check:
    check: str
    status: str  # ok | fail | unverified
    note: str  # what was found (ok) or what to do (fail, unverified)


def passed(checks: Iterable[Check]) -> bool:
    """Exit 0 only when nothing fails (unverified is no failure: nothing could prove it either way)."""
    return all(c.status != FAIL for c in checks)


def table(checks: list[Check]) -> str:
    """The checks as a plain-text table: check, status, what to do."""
    rows = [("check", "status", "what to do / what was found")] + [
        (c.check, c.status, c.note) for c in checks
    ]
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    lines = [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, f"{'-' * w0}  {'-' * w1}  {'-' * 27}")
    return "\n".join(lines)


def coming_billing_date(today: date, billing_day: int) -> date:
    """The first billing date on or after `today` (a day past a month's end is its last day)."""
    for months in (0, 1):
        year, month = divmod(today.month - 1 + months, 12)
        year, month = today.year + year, month + 1
        day = date(year, month, min(billing_day, calendar.monthrange(year, month)[1]))
        if day >= today:
            return day
    raise AssertionError("unreachable: next month's billing date is after today")


def run(
    tenant: Tenant,
    settings: Settings,
    *,
    today: date,
    huntress: Callable[[], HuntressClient] | None = None,
    connectwise: Callable[[], ConnectWiseClient] | None = None,
) -> list[Check]:
    """Every check of the tenant, in order. The clients are built as the DAG builds them."""
    from . import conn_check

    out: list[Check] = []
    h_ok, h_said = conn_check.check_huntress(tenant.huntress_conn_id)
    out.append(Check(f"Huntress connection {tenant.huntress_conn_id}", OK if h_ok else FAIL, h_said))
    c_ok, c_said = conn_check.check_connectwise(tenant.connectwise_conn_id)
    out.append(Check(f"ConnectWise connection {tenant.connectwise_conn_id}", OK if c_ok else FAIL, c_said))
    if h_ok:
        client = (huntress or (lambda: HuntressClient.from_connection(tenant.huntress_conn_id)))()
        out += _huntress_checks(client, settings, today, tenant.billing_day or settings.billing_day)
    else:
        out.append(Check("Huntress invoice and accounts", UNVERIFIED, "fix the Huntress connection first"))
    if c_ok:
        concurrency = settings.connectwise_concurrency
        cw = (
            connectwise
            or (
                lambda: ConnectWiseClient.from_connection(tenant.connectwise_conn_id, concurrency=concurrency)
            )
        )()
        out += _connectwise_checks(cw, settings)
    else:
        out.append(
            Check("ConnectWise catalog, types, role", UNVERIFIED, "fix the ConnectWise connection first")
        )
    return out


# -- Huntress --------------------------------------------------------------------------------------


def _huntress_checks(
    client: HuntressClient, settings: Settings, today: date, billing_day: int
) -> list[Check]:
    out: list[Check] = []
    try:
        account: Account = client.get("v1/account", "/v1/account").get("account") or Account()
        out.append(
            Check(
                "Huntress account",
                OK,
                f"{account.get('name')} (subdomain {account.get('subdomain')}, id {account.get('id')})",
            )
        )
    except ApiError as exc:
        out.append(Check("Huntress account", FAIL, f"GET /v1/account failed: {exc}"))
        return out
    coming = coming_billing_date(today, billing_day)
    try:
        invoices = client.invoices(settings.invoice_source)
        invoice = select_invoice(invoices, coming)
    except InvoiceChoiceError as exc:
        return [*out, Check("Huntress invoice", FAIL, str(exc))]
    except ApiError as exc:
        return [*out, Check("Huntress invoice", FAIL, f"the invoices could not be read: {exc}")]
    which = f"of the coming billing date {coming}"
    if invoice is None:
        invoice = next((i for i in invoices if standing(i)), None)
        which = f"the newest (none yet of the coming billing date {coming})"
    if invoice is None:
        return [
            *out,
            Check(
                "Huntress invoice",
                FAIL,
                f"no standing usage invoice in {settings.invoice_source} mode: check invoice_source "
                "(reseller or account) and that Huntress has billed this account",
            ),
        ]
    out.append(
        Check(
            "Huntress invoice",
            OK,
            f"invoice {invoice.get('id')} created {created_date(invoice)} ({invoice.get('status')}), {which}",
        )
    )
    if settings.invoice_source != "reseller":
        out.append(Check("Huntress managed accounts", OK, "account mode: usage is read per organization"))
        return out
    try:
        lines = client.usage_lines(json_int(invoice["id"]))
        own = {o.get("account_id") for o in client.organizations()}
    except ApiError as exc:
        return [*out, Check("Huntress invoice lines", FAIL, f"could not be read: {exc}")]
    managed = [a for a in invoice_account_ids(lines) if a not in own]
    if not managed:
        out.append(Check("Huntress managed accounts", OK, "the invoice names only the own account"))
    for account_id in managed:
        out.append(_managed_account(client, account_id))
    return out


def _managed_account(client: HuntressClient, account_id: int) -> Check:
    name = f"Huntress account {account_id}"
    try:
        orgs = client.account_organizations(account_id)
    except AccountRefused:
        return Check(
            name,
            FAIL,
            "Huntress answered 403 to its organizations: the API key may not read this account, so its "
            "invoice lines will be held (unmapped). Use a key of the reseller account that manages it.",
        )
    except ApiError as exc:
        return Check(name, FAIL, f"its organizations could not be read: {exc}")
    if orgs is None:
        return Check(
            name,
            FAIL,
            "Huntress answered 404: the key does not manage this account; its organizations will match "
            "on their invoice names only. Use a key of the reseller account that manages it.",
        )
    return Check(name, OK, f"{len(orgs)} organizations readable")


# -- ConnectWise -----------------------------------------------------------------------------------


def _identifiers(products: Mapping[str, str | tuple[str, ...]]) -> list[str]:
    """The catalog identifiers `products` maps to (a value may be one identifier or a list)."""
    found: set[str] = set()
    for value in products.values():
        found.update([value] if isinstance(value, str) else [str(v) for v in value])
    return sorted(found)


def _connectwise_checks(cw: ConnectWiseClient, settings: Settings) -> list[Check]:
    out: list[Check] = []
    identifiers = _identifiers(settings.products)
    try:
        items = {str(i.get("identifier")): i for i in cw.catalog(identifiers)}
        catalog_read = True
    except ApiError as exc:
        catalog_read = False
        why = (
            "the API member's role may not read the product catalog: set Procurement → Product Catalog: "
            "Inquire to All"
            if exc.status == 403
            else f"the catalog could not be read: {exc}"
        )
        out.append(Check("Catalog items", FAIL, why))
    if catalog_read:
        for ident in identifiers:
            item = items.get(ident)
            if item is None:
                note = (
                    f"no catalog item {ident}: create it in Procurement → Product Catalog or fix `products`"
                )
                out.append(Check(f"Catalog item {ident}", FAIL, note))
            elif item.get("inactiveFlag"):
                note = f"catalog item {ident} is inactive: activate it in Procurement → Product Catalog"
                out.append(Check(f"Catalog item {ident}", FAIL, note))
            else:
                out.append(Check(f"Catalog item {ident}", OK, f"id {item.get('id')}, active"))
    out += _agreement_types(cw, settings.agreement_types)
    out += _permissions(cw, catalog_read)
    return out


def _agreement_types(cw: ConnectWiseClient, wanted: Iterable[str]) -> list[Check]:
    wanted = list(wanted)
    if not wanted:
        return [Check("Agreement types", OK, "none configured: agreements of every type are considered")]
    try:
        payload = cw.get("finance/agreements/types", "/finance/agreements/types", {"pageSize": 1000})
    except ApiError as exc:
        return [Check("Agreement types", FAIL, f"GET /finance/agreements/types failed: {exc}")]
    names = (
        {str(t.get("name")) for t in payload if isinstance(t, Mapping)}
        if isinstance(payload, list)
        else set()
    )
    out = []
    for name in wanted:
        if name in names:
            out.append(Check(f"Agreement type {name}", OK, "exists"))
        else:
            close = sorted(n for n in names if n.casefold() == name.casefold())
            hint = f" (ConnectWise spells it {close[0]!r}: names compare exactly)" if close else ""
            out.append(
                Check(
                    f"Agreement type {name}",
                    FAIL,
                    f"no agreement type named {name!r}{hint}: fix agreement_types or the type in "
                    "ConnectWise (Setup Tables → Agreement Type)",
                )
            )
    return out


# -- the API member's role -------------------------------------------------------------------------

# (area label, module word, function name) as ConnectWise's role page and /system/mySecurity name them.
AGREEMENTS = ("Finance → Agreements", "finance", "agreements")
CATALOG = ("Procurement → Product Catalog", "procurement", "product catalog")
COMPANIES = ("Companies → Company Maintenance", "compan", "company maintenance")
# What a row of /system/mySecurity grants, each read from its `<op>Level` field.
Operation = Literal["inquire", "edit", "add", "delete"]
_LEVELS = {
    "all": "all",
    "none": "none",
    "customize": "customized",
    "customized": "customized",
    "my": "my",
    "mine": "my",
}


def _permissions(cw: ConnectWiseClient, catalog_read: bool) -> list[Check]:
    try:
        rows = cw.my_security()
    except ApiError:
        rows = None
    if rows is None:
        return _probed(cw, catalog_read)
    agreements, catalog, companies = (_row(rows, area) for area in (AGREEMENTS, CATALOG, COMPANIES))
    return [
        _level(agreements, AGREEMENTS, "inquire", {"all"}, "Inquire to All (Huntress documents Inquire All)"),
        _edit(agreements),
        _add(agreements),
        _delete(agreements),
        _level(catalog, CATALOG, "inquire", {"all"}, "Inquire to All"),
        _level(companies, COMPANIES, "inquire", {"all"}, "Inquire to All (the sync reads the companies)"),
    ]


def _row(rows: list[SecurityLevels], area: tuple[str, str, str]) -> SecurityLevels | None:
    _, module, function = area
    for r in rows:
        mod = f"{r.get('moduleIdentifier') or ''} {r.get('moduleName') or ''}".casefold()
        if module in mod and str(r.get("moduleFunctionName") or "").strip().casefold() == function:
            return r
    return None


def _read_level(row: SecurityLevels | None, op: Operation) -> str | None:
    raw = row.get(f"{op}Level") if row is not None else None
    return _LEVELS.get(str(raw).strip().casefold()) if isinstance(raw, str) else None


def _said(row: SecurityLevels | None, op: Operation) -> str:
    return repr(row.get(f"{op}Level")) if row is not None else "nothing"


def _unverified(area: tuple[str, str, str], op: Operation, row: SecurityLevels | None, want: str) -> Check:
    return Check(
        f"{area[0]}: {op.title()}",
        UNVERIFIED,
        f"ConnectWise's /system/mySecurity answered {_said(row, op)}; check in {ROLE_PAGE} → {area[0]}: {want}",
    )


def _level(
    row: SecurityLevels | None, area: tuple[str, str, str], op: Operation, good: set[str], want: str
) -> Check:
    level = _read_level(row, op)
    if level is None:
        return _unverified(area, op, row, want)
    name = f"{area[0]}: {op.title()}"
    if level in good:
        return Check(name, OK, level.title())
    return Check(name, FAIL, f"is {level.title()}: set {area[0]}: {want} ({ROLE_PAGE})")


def _edit(row: SecurityLevels | None) -> Check:
    level, name = _read_level(row, "edit"), f"{AGREEMENTS[0]}: Edit"
    if level is None:
        return _unverified(AGREEMENTS, "edit", row, "Edit All (or customized)")
    if level == "all":
        return Check(name, OK, "All")
    if level == "customized":
        return Check(
            name,
            OK,
            "customized: only the agreements the role lists are written; the others are held as "
            "push_rejected, naming the agreement",
        )
    return Check(
        name,
        FAIL,
        f"is {level.title()}: set {AGREEMENTS[0]}: Edit to All, or customize it to the agreements the sync "
        f"may change ({ROLE_PAGE}); without it every change is held as push_rejected",
    )


def _add(row: SecurityLevels | None) -> Check:
    level, name = _read_level(row, "add"), f"{AGREEMENTS[0]}: Add"
    if level is None:
        return _unverified(
            AGREEMENTS, "add", row, "Add None (All or customized to create approved additions)"
        )
    if level == "none":
        return Check(
            name,
            OK,
            "None, as Huntress documents; creating an approved new addition needs Add (All or customized), "
            "else it is held as push_rejected",
        )
    return Check(name, OK, f"{level.title()}: approved new additions can be created")


def _delete(row: SecurityLevels | None) -> Check:
    level, name = _read_level(row, "delete"), f"{AGREEMENTS[0]}: Delete"
    if level is None:
        return _unverified(AGREEMENTS, "delete", row, "Delete None")
    if level == "none":
        return Check(name, OK, "None")
    return Check(name, OK, f"{level.title()}: more than the sync needs; Huntress documents Delete None")


def _probed(cw: ConnectWiseClient, catalog_read: bool) -> list[Check]:
    """Without /system/mySecurity: Inquire proven by reads; the rest cannot be proven read-only."""
    try:
        cw.get("finance/agreements", "/finance/agreements", {"pageSize": 1})
        inquire = Check(f"{AGREEMENTS[0]}: Inquire", OK, "the agreements can be read")
    except ApiError as exc:
        fix = f"set {AGREEMENTS[0]}: Inquire to All ({ROLE_PAGE})" if exc.status == 403 else str(exc)
        inquire = Check(f"{AGREEMENTS[0]}: Inquire", FAIL, fix)
    where = f"no read-only call proves it; check in {ROLE_PAGE} ({MEMBER_PAGE})"
    return [
        inquire,
        Check(f"{AGREEMENTS[0]}: Edit", UNVERIFIED, f"{where}: Edit All (or customized)"),
        Check(f"{AGREEMENTS[0]}: Add", UNVERIFIED, f"{where}: Add None (All to create approved additions)"),
        Check(f"{AGREEMENTS[0]}: Delete", UNVERIFIED, f"{where}: Delete None"),
        Check(
            f"{CATALOG[0]}: Inquire",
            OK if catalog_read else FAIL,
            "the catalog can be read" if catalog_read else f"set {CATALOG[0]}: Inquire to All ({ROLE_PAGE})",
        ),
    ]


def today_utc() -> date:
    return datetime.now(UTC).date()
