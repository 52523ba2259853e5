"""The settings page's ConnectWise choices (catalog items, agreement types), cached briefly.

The catalog items and the agreement types are read through the tenant's ConnectWise connection (as
preflight reads them), bounded, cached briefly per tenant, or why they could not be read.

Bounded: the catalog is one request of at most `CATALOG_CAP` items (ConnectWise's page maximum),
the types one paged list (a site has a handful); an identifier beyond a full page is looked up by
name (`identifier in (...)`), once. Read only for a person who may edit the settings, and kept
`CACHE_SECONDS` per app and tenant, so a page opened again, or previewed, reads nothing new.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from billing_sync.api_records import AgreementType, CatalogItem
from billing_sync.conn_check import QUICK
from billing_sync.connectwise import PAGE_SIZE, ConnectWiseClient
from billing_sync.errors import ApiError, CredentialsError
from billing_sync.scrub import scrubber, secrets_of

CACHE_SECONDS = 60.0
CATALOG_CAP = PAGE_SIZE
NOT_IN_CATALOG = "not in the catalog"
INACTIVE = "inactive in the catalog"


@dataclass(frozen=True)
class Item:
    identifier: str
    description: str
    inactive: bool

    @property
    def label(self) -> str:
        """ "IDENTIFIER — description", "(inactive)" when it is."""
        text = f"{self.identifier} — {self.description}" if self.description else self.identifier
        return f"{text} (inactive)" if self.inactive else text


@dataclass(frozen=True)
class Choice:
    """One agreement type offered: ticked when configured; `note` flags an inactive or unknown one."""

    name: str
    checked: bool
    note: str = ""


@dataclass
class Lists:
    """What was read through `conn_id`: items by identifier (None: unread, `catalog_problem` says
    why), whether they are the whole catalog, and the agreement types (None: `types_problem`)."""

    conn_id: str
    items: dict[str, Item] | None
    whole: bool = True
    read_in_page: int = 0  # how many items the one page held (the rest were asked for by name)
    types: list[Item] | None = None
    catalog_problem: str = ""
    types_problem: str = ""
    codebase: str | None = None
    looked_up: set[str] = field(default_factory=set)  # identifiers asked for by name beyond the page

    def sorted_items(self) -> list[Item]:
        return sorted((self.items or {}).values(), key=lambda i: i.identifier)

    def flags(self, identifiers: Iterable[str]) -> list[str]:
        """Each missing or inactive identifier, with why: flagged on the page, refused in a change
        (none when the catalog was not read; one beyond a full page unless looked up)."""
        if self.items is None:
            return []
        out = []
        for ident in identifiers:
            item = self.items.get(ident)
            if item is None and (self.whole or ident in self.looked_up):
                out.append(f"{ident}: {NOT_IN_CATALOG}")
            elif item is not None and item.inactive:
                out.append(f"{ident}: {INACTIVE}")
        return out

    def choices(self, chosen: Iterable[str]) -> list[Choice]:
        """ConnectWise's types, the configured ones ticked, then configured ones it lacks, flagged."""
        wanted = list(dict.fromkeys(chosen))
        names = {t.identifier for t in self.types or []}
        out = [
            Choice(t.identifier, t.identifier in wanted, "inactive" if t.inactive else "")
            for t in sorted(self.types or [], key=lambda t: t.identifier.casefold())
        ]
        out += [Choice(n, True, "not a ConnectWise agreement type") for n in wanted if n not in names]
        return out


def _reason(exc: BaseException, area: str) -> str:
    """A plain reason, without the request's details (scrubbed later in any case)."""
    if isinstance(exc, CredentialsError):
        return f"ConnectWise refused the connection ({exc})"
    if isinstance(exc, ApiError):
        if exc.status == 403:
            return f"the API member's role may not read {area} (set its Inquire level to All)"
        if exc.status is None:
            return f"ConnectWise could not be reached ({exc})"
        return f"ConnectWise answered HTTP {exc.status}"
    return f"{type(exc).__name__}: {exc}"


def _catalog_item(raw: CatalogItem) -> Item:
    return Item(
        str(raw.get("identifier") or ""), str(raw.get("description") or ""), bool(raw.get("inactiveFlag"))
    )


def _agreement_type(raw: AgreementType) -> Item:
    """A type as an item named by its name (ConnectWise's AgreementType has no description)."""
    return Item(str(raw.get("name") or ""), "", bool(raw.get("inactiveFlag")))


def read(conn_id: str, wanted: Iterable[str] = (), *, limit: int | None = None) -> Lists:
    """The catalog (one page) and the agreement types through `conn_id`; `wanted` identifiers beyond
    a full page are looked up by name. Never raises: a failure is a plain, scrubbed reason."""
    secrets: list[str] = []
    try:
        from billing_sync.api_hooks import ConnectWiseApiHook

        secrets = secrets_of(ConnectWiseApiHook(connectwise_conn_id=conn_id).get_connection(conn_id))
    except Exception as exc:  # no such connection: nothing can be read
        # Its text is not quoted: a connection that does not parse may hold its password in it.
        missing = type(exc).__name__ == "AirflowNotFoundException"
        reason = (
            "no connection of that id is defined (Admin → Connections)"
            if missing
            else f"the connection could not be read ({type(exc).__name__})"
        )
        return Lists(conn_id, None, types=None, catalog_problem=reason, types_problem=reason)
    scrub = scrubber(secrets)
    try:
        client = ConnectWiseClient.from_connection(conn_id, retry=QUICK)
        page, whole = client.catalog_page(limit or CATALOG_CAP)
    except Exception as exc:
        reason = scrub(_reason(exc, "the product catalog"))
        return Lists(conn_id, None, types=None, catalog_problem=reason, types_problem=reason)
    items = {i.identifier: i for i in (_catalog_item(r) for r in page) if i.identifier}
    lists = Lists(conn_id, items, whole, len(items), codebase=client.codebase)
    try:
        lists.types = [t for t in (_agreement_type(r) for r in client.agreement_types()) if t.identifier]
    except Exception as exc:
        lists.types_problem = scrub(_reason(exc, "the agreement types"))
    lookup(lists, wanted, scrub=scrub, client=client)
    return lists


def lookup(
    lists: Lists,
    identifiers: Iterable[str],
    *,
    scrub: Callable[[str], str] | None = None,
    client: ConnectWiseClient | None = None,
) -> None:
    """Identifiers a full page did not hold, asked for by name (one request); a failure leaves
    them unknown (neither flagged nor refused)."""
    if lists.items is None or lists.whole:
        return
    missing = sorted({i for i in identifiers if i and i not in lists.items and i not in lists.looked_up})
    if not missing:
        return
    try:
        client = client or ConnectWiseClient.from_connection(
            lists.conn_id, codebase=lists.codebase, retry=QUICK
        )
        found = client.catalog(missing)
    except (ApiError, ValueError):  # ValueError: an identifier the conditions cannot quote
        return
    lists.items.update({i.identifier: i for i in (_catalog_item(r) for r in found)})
    lists.looked_up.update(missing)


class Cache:
    """`Lists` per (tenant, connection), each for CACHE_SECONDS."""

    def __init__(self, seconds: float = CACHE_SECONDS) -> None:
        self.seconds = seconds
        self._lock = threading.Lock()
        self._held: dict[tuple[str, str], tuple[float, Lists]] = {}
        self._looking = threading.Lock()

    def get(self, tenant: str, conn_id: str, wanted: Iterable[str]) -> Lists:
        key, now = (tenant, conn_id), time.monotonic()
        with self._lock:
            held = self._held.get(key)
        if held is not None and now - held[0] < self.seconds:
            lists = held[1]
            with self._looking:  # the held lists grow by what is asked for: one asker at a time
                lookup(lists, wanted)
            return lists
        lists = read(conn_id, wanted)
        with self._lock:
            self._held[key] = (now, lists)
        return lists


_CREATING = threading.Lock()


def cache_of(state: Any) -> Cache:
    """The app's cache (on its `state`): one per app, so each app reads afresh."""
    with _CREATING:
        found = getattr(state, "cw_lists", None)
        if not isinstance(found, Cache):
            found = Cache()
            state.cw_lists = found
        return found
