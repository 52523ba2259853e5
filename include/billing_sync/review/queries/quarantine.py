"""The quarantine page's queries: rows grouped by company or organization.

Its rows grouped by ConnectWise company or Huntress organization, one page at a time; the open
rows of one group; how each organization matches now; the CSV export.

One tenant's rows (`tenant` keyword). SQLAlchemy Core over `store.quarantine`, values bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NotRequired, TypedDict, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store
from billing_sync.names import REASON_CODES, reason_rank
from billing_sync.review.inputs import StoreFilters
from billing_sync.review.queries.staging import (
    CompanyCard,
    Staged,
    candidate_ids,
    card,
    company_names,
    staged,
)


class QueueRow(store.QuarantineRow):
    """A quarantine row as the page lists it: `cards.mark` adds its badges and what "Adjust…"
    starts from."""

    badges: NotRequired[list[str]]  # `cards.BADGES` keys, in that order
    adjust_to: NotRequired[int | None]


class GroupOrganization(TypedDict):
    """An organization a group's rows name (id None: a row with a name only)."""

    id: int | None
    name: str


class OrganizationMatch(TypedDict):
    """How an organization matches with the newest run's frames and today's billing_org_map."""

    staged: bool  # whether the newest run saw it: only those can be mapped here
    status: str | None  # matched, unmapped, ambiguous (None: not staged)
    rule: str | None
    company: CompanyCard | None  # the matched company
    candidates: list[CompanyCard]  # an ambiguous match's companies
    mapped: store.OrgMapping | None  # its billing_org_map row, if any


class ExportRow(TypedDict):
    """A row of the CSV export (`EXPORT_COLUMNS`)."""

    group: str
    id: int
    billing_date: date
    status: str
    reason_code: str
    product: str | None
    huntress_organization_id: int | None
    huntress_organization_name: str | None
    cw_company_id: int | None
    company_name: str
    detail: str | None
    sync_key: str
    run_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolved_by_id: str | None
    note: str | None


def _group_key() -> sa.ColumnElement[str]:
    """The group of a row in SQL: its ConnectWise company when it has one, else its Huntress
    organization, else its own sync key (an invoice line without an organization). The prefixes are
    constants in the statement, not parameters, so PostgreSQL sees the GROUP BY expression and the
    selected one as the same."""
    q = store.quarantine

    def prefixed(prefix: str, value: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
        return sa.literal_column(f"'{prefix}:'", sa.Text) + sa.cast(value, sa.Text)

    return sa.case(
        (q.c.cw_company_id.is_not(None), prefixed("company", q.c.cw_company_id)),
        (q.c.huntress_organization_id.is_not(None), prefixed("organization", q.c.huntress_organization_id)),
        else_=prefixed("key", q.c.sync_key),
    )


def group_key(row: store.QuarantineRow) -> str:
    """`_group_key` of a row, for rows read without it."""
    if row["cw_company_id"] is not None:
        return f"company:{row['cw_company_id']}"
    if row["huntress_organization_id"] is not None:
        return f"organization:{row['huntress_organization_id']}"
    return f"key:{row['sync_key']}"


def _quarantine_where(filters: StoreFilters, tenant: str) -> list[sa.ColumnElement[bool]]:
    """The filters of `store.list_quarantine` (`QuarantineFilter.store_filters()`), as Core clauses."""
    q = store.quarantine
    where: list[sa.ColumnElement[bool]] = [q.c.tenant == tenant]
    wanted = {
        "status": filters.get("status"),
        "billing_date": filters.get("billing_date"),
        "reason_code": filters.get("reason_code"),
        "run_id": filters.get("run_id"),
    }
    where += [q.c[name] == value for name, value in wanted.items() if value is not None]
    company = filters.get("company_id")
    if company is not None:
        where.append(q.c.cw_company_id == int(company))
    return where


GROUP_KEY = re.compile(r"(company|organization):(\d{1,19})|key:(.{1,500})", re.S)


def open_group_rows(
    engine: Engine, key: str, filters: StoreFilters, *, tenant: str
) -> list[store.QuarantineRow]:
    """The tenant's open rows of one group (`group_key`, e.g. "company:369") that the list's
    `filters` keep (billing date, reason, run; their status is ignored: only open rows are taken),
    oldest id first: what a decision on the whole card acts on."""
    q = store.quarantine
    kept: StoreFilters = {**filters, "status": "open"}
    stmt = sa.select(q).where(*_quarantine_where(kept, tenant), _group_key() == key).order_by(q.c.id)
    with engine.connect() as conn:
        # Selected whole from store.quarantine: each row holds exactly a QuarantineRow's columns.
        return [cast(store.QuarantineRow, dict(r._mapping)) for r in conn.execute(stmt)]


@dataclass
class QuarantineGroup:
    key: str
    kind: str  # company | organization | key
    ident: int | None  # the company or organization id; None for a key group
    rows: list[QueueRow]  # the group's rows on this page
    company: CompanyCard | None = None  # company groups: as staged
    organizations: list[GroupOrganization] = field(default_factory=list)  # from the rows
    match: OrganizationMatch | None = None  # organization groups
    total: int = 0  # the group's rows the filters keep, on every page
    continued: bool = False  # its first rows are on the page before
    continues: bool = False  # its last rows are on the page after

    @property
    def billing_dates(self) -> list[date]:
        return sorted({r["billing_date"] for r in self.rows}, reverse=True)

    @property
    def reasons(self) -> list[str]:
        return sorted({r["reason_code"] for r in self.rows}, key=reason_rank)


@dataclass
class GroupedQuarantine:
    groups: list[QuarantineGroup]
    total_groups: int
    total_rows: int


def _text_order(engine: Engine, column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """`column` compared code point by code point, as Python compares text: SQLite does (BINARY);
    PostgreSQL only with the "C" collation (its database's collation may sort otherwise)."""
    return column.collate("C") if engine.dialect.name == "postgresql" else column


def _grouped_select(
    engine: Engine,
    filters: StoreFilters,
    *,
    tenant: str,
    order: str,
    columns: Sequence[sa.ColumnElement[Any]] | None = None,
) -> sa.Select[Any]:
    """The rows the filters keep, in the grouped order: groups newest seen first (``order="amount"``:
    the group's total amount at stake first, groups with none last), ties by group key; inside a
    group by the contract's reason order, product, billing date, id. One statement with window
    functions, so a page is a LIMIT/OFFSET of it and the export reads it as a stream. Each row also
    carries its `group_key`, the group's row count (`group_rows`) and its place in it (`group_index`)."""
    q = store.quarantine
    key = _group_key()
    rank = sa.case(
        {code: i for i, code in enumerate(REASON_CODES)}, value=q.c.reason_code, else_=len(REASON_CODES)
    )
    within = [
        rank,
        _text_order(engine, sa.func.coalesce(q.c.product, "")),
        q.c.billing_date,
        q.c.id,
    ]
    inner = (
        sa.select(
            *(columns if columns is not None else [q]),
            key.label("group_key"),
            sa.func.max(q.c.last_seen_at).over(partition_by=key).label("group_seen"),
            sa.func.sum(q.c.amount_at_stake).over(partition_by=key).label("group_amount"),
            sa.func.count().over(partition_by=key).label("group_rows"),
            sa.func.row_number().over(partition_by=key, order_by=within).label("group_index"),
        )
        .where(*_quarantine_where(filters, tenant))
        .subquery()
    )
    if order not in store.QUARANTINE_ORDERS:
        raise ValueError(f"order must be one of {list(store.QUARANTINE_ORDERS)}, not {order!r}")
    first = (
        [sa.case((inner.c.group_amount.is_(None), 1), else_=0), inner.c.group_amount.desc()]
        if order == "amount"
        else []
    )
    return sa.select(inner).order_by(
        *first, inner.c.group_seen.desc(), _text_order(engine, inner.c.group_key), inner.c.group_index
    )


def quarantine_groups(
    engine: Engine, filters: StoreFilters, *, tenant: str, limit: int, offset: int, order: str = "seen"
) -> GroupedQuarantine:
    """One page of at most `limit` rows, grouped (`_grouped_select`'s order). A group larger than
    what is left of the page goes on over the next page, marked so (`continued`, `continues`): a
    page never holds more than `limit` rows, however many rows one company has. Two queries."""
    key = _group_key()
    counted = sa.select(sa.func.count(), sa.func.count(sa.distinct(key))).where(
        *_quarantine_where(filters, tenant)
    )
    page = _grouped_select(engine, filters, tenant=tenant, order=order).limit(limit).offset(offset)
    with engine.connect() as conn:
        total_rows, total_groups = conn.execute(counted).one()
        rows = [dict(r._mapping) for r in conn.execute(page)] if total_rows else []
    groups: list[QuarantineGroup] = []
    for row in rows:
        group_key_, total, index = row.pop("group_key"), row.pop("group_rows"), row.pop("group_index")
        for extra in ("group_seen", "group_amount"):
            row.pop(extra)
        if not groups or groups[-1].key != group_key_:
            groups.append(QuarantineGroup(group_key_, "", None, [], total=total, continued=index > 1))
        # Selected whole from store.quarantine, the group's columns popped: a QuarantineRow.
        groups[-1].rows.append(cast(QueueRow, row))
        groups[-1].continues = index < total
    for g in groups:
        _describe_rows(g)
    return GroupedQuarantine(groups, total_groups, total_rows)


def _describe_rows(group: QuarantineGroup) -> None:
    """The group's kind and id from its key, and its organizations from its rows."""
    kind, _, ident = group.key.partition(":")
    group.kind, group.ident = kind, int(ident) if kind != "key" else None
    orgs = {
        r["huntress_organization_id"]: r.get("huntress_organization_name") or ""
        for r in group.rows
        if r.get("huntress_organization_id") is not None or r.get("huntress_organization_name")
    }
    group.organizations = [{"id": i, "name": n} for i, n in orgs.items()]


def describe_groups(engine: Engine, groups: Sequence[QuarantineGroup], *, tenant: str) -> None:
    """Add what the newest run's staging says: the company of each company group, and for each
    organization group how the organization matches now (`organization_matches`)."""
    if not groups:
        return
    data = staged(engine, tenant=tenant)
    cards = data.company_cards()
    org_ids = [g.ident for g in groups if g.kind == "organization" and g.ident is not None]
    matches = organization_matches(engine, data, org_ids, tenant=tenant) if org_ids else {}
    for g in groups:
        if g.kind == "company" and g.ident is not None:
            g.company = card(cards, g.ident)
        elif g.kind == "organization" and g.ident is not None:
            g.match = matches.get(g.ident)


def organization_matches(
    engine: Engine, data: Staged, org_ids: Iterable[int], *, tenant: str
) -> dict[int, OrganizationMatch]:
    """How each organization matches with the newest run's frames and today's billing_org_map."""
    wanted = set(org_ids)
    org_map = store.list_org_map(engine, tenant=tenant)
    mapped = {r["huntress_organization_id"]: r for r in org_map if r["huntress_organization_id"] in wanted}
    out: dict[int, OrganizationMatch] = {
        o: {
            "staged": False,
            "status": None,
            "rule": None,
            "company": None,
            "candidates": [],
            "mapped": mapped.get(o),
        }
        for o in wanted
    }
    if data.run_id is None:
        return out
    orgs = data.organizations[data.organizations["organization_id"].isin(list(wanted))]
    if orgs.empty:
        return out
    cards = data.company_cards()
    matches = reconcile.match_organizations(
        orgs, data.companies, store.org_map_rows_frame(org_map), known=data.organizations
    )
    for m in matches.to_dict("records"):
        company_id = None if pd.isna(m["company_id"]) else int(m["company_id"])
        found = out[int(m["organization_id"])]
        found["staged"] = True
        found["status"] = str(m["status"])
        found["rule"] = None if pd.isna(m["match_rule"]) else str(m["match_rule"])
        found["company"] = card(cards, company_id) if company_id is not None else None
        found["candidates"] = [card(cards, c) for c in candidate_ids(m["candidate_company_ids"])]
    return out


# --- the CSV export of the quarantine --------------------------------------------------------------

EXPORT_COLUMNS = (
    "group",
    "id",
    "billing_date",
    "status",
    "reason_code",
    "product",
    "huntress_organization_id",
    "huntress_organization_name",
    "cw_company_id",
    "company_name",
    "detail",
    "sync_key",
    "run_id",
    "first_seen_at",
    "last_seen_at",
    "resolved_at",
    "resolved_by",
    "resolved_by_id",
    "note",
)


EXPORT_BATCH = 500  # rows fetched from the database at a time (and written per piece of the body)


def quarantine_export(
    engine: Engine, filters: StoreFilters, *, tenant: str, batch: int = EXPORT_BATCH
) -> Iterator[ExportRow]:
    """Every row the filters keep (no paging), in the grouped view's order, with its group and the
    company's name as the newest run staged it; for `csvfile`, which defuses formulas.

    A stream: one query, read `batch` rows at a time (a server-side cursor on PostgreSQL), so memory
    stays flat however many rows there are. The connection is opened on the first row asked for and
    closed when the stream ends or is dropped."""
    q = store.quarantine
    wanted = [q.c[c] for c in EXPORT_COLUMNS if c in q.c]
    stmt = _grouped_select(engine, filters, tenant=tenant, order="seen", columns=wanted)
    names = company_names(engine, tenant=tenant)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(stmt)
        try:
            for r in result.mappings():
                company = r["cw_company_id"]
                # The export's columns as selected, and the group's (which the CSV leaves out).
                yield cast(
                    ExportRow,
                    {
                        **r,
                        "group": r["group_key"],
                        "company_name": names.get(company, "") if company is not None else "",
                    },
                )
        finally:
            result.close()
