"""What the pages show, read through billing_sync.store: mapping rows, report files, company names,
the company search of the picker, and the quarantine grouped by organization or company.

Everything is one tenant's: each function that reads rows takes the page's `tenant` (keyword, no
default, so no caller can forget it and show another tenant's rows).

The queries of their own (the picker's companies, the grouped quarantine) are SQLAlchemy Core over
the store's public tables (`store.quarantine`, `store.staging_table("companies")`), values bound.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store
from billing_sync.names import REASON_CODES, reason_rank
from billing_sync.report import REPORT_FILE

REPORT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}
_STATUS_ORDER = {"ambiguous": 0, "unmapped": 1, "matched": 2}


@dataclass
class Staged:
    """The newest run's staged Huntress organizations and ConnectWise companies."""

    run_id: str | None
    organizations: pd.DataFrame
    companies: pd.DataFrame

    def company_names(self) -> dict[int, str]:
        return _company_names(self.companies)

    def company_ids(self) -> set[int]:
        return {int(i) for i in self.companies["company_id"].dropna()}

    def organization_ids(self) -> set[int]:
        return {int(i) for i in self.organizations["organization_id"].dropna()}

    def company_cards(self) -> dict[int, dict[str, Any]]:
        """Each staged company as the pages show it: id, name, identifier (first row of an id wins)."""
        c = self.companies.dropna(subset=["company_id"]).drop_duplicates("company_id")
        return {
            int(i): {"id": int(i), "name": _text(n), "identifier": _text(k)}
            for i, n, k in zip(c["company_id"], c["name"], c["identifier"], strict=True)
        }


@dataclass
class MappingPage:
    run_id: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)  # org_map rows of organizations not staged
    counts: dict[str, int] = field(default_factory=dict)
    new: int = 0  # organizations new in the run (store.new_organizations): rows with `new` true


def staged(engine: Engine, *, tenant: str) -> Staged:
    """Frames of the newest run that staged organizations (a failed early run stages nothing)."""
    run_id = store.newest_staged_run(engine, "organizations", tenant=tenant)
    if run_id is None:
        return Staged(
            None,
            pd.DataFrame(columns=["organization_id", "name", "key"]),
            pd.DataFrame(columns=["company_id", "identifier", "name"]),
        )
    return Staged(
        run_id,
        store.read_frame(engine, run_id, "organizations", tenant=tenant),
        store.read_frame(engine, run_id, "companies", tenant=tenant),
    )


def company_names(engine: Engine, *, tenant: str) -> dict[int, str]:
    """`staged(engine).company_names()` without reading the organizations."""
    run_id = store.newest_staged_run(engine, "organizations", tenant=tenant)
    if run_id is None:
        return {}
    return _company_names(store.read_frame(engine, run_id, "companies", tenant=tenant))


def _company_names(companies: pd.DataFrame) -> dict[int, str]:
    c = companies.dropna(subset=["company_id"])
    return {int(i): _text(n) for i, n in zip(c["company_id"], c["name"], strict=True)}


def mapping_page(engine: Engine, data: Staged, *, tenant: str) -> MappingPage:
    """Every staged organization with its company and rule; unmatched and ambiguous first."""
    page = MappingPage(run_id=data.run_id)
    if data.run_id is None:
        return page
    org_map = store.list_org_map(engine, tenant=tenant)
    mapped = {r["huntress_organization_id"]: r for r in org_map}
    matches = reconcile.match_organizations(
        data.organizations, data.companies, store.org_map_rows_frame(org_map)
    )
    names = data.company_names()
    cards = data.company_cards()
    orgs = data.organizations.drop_duplicates("organization_id").set_index("organization_id")
    # On the run's invoice for the first time: recorded by no other run (docs/contract.md §4).
    new = {o["id"] for o in store.new_organizations(engine, data.run_id, tenant=tenant)}
    for m in matches.to_dict("records"):
        org_id = int(m["organization_id"])
        org = cast(pd.Series, orgs.loc[org_id])  # one row: the index is unique (drop_duplicates)
        page.rows.append({**_mapping_row(m, org, names, cards, mapped.get(org_id)), "new": org_id in new})
    page.new = sum(1 for r in page.rows if r["new"])
    page.rows.sort(
        key=lambda r: (_STATUS_ORDER.get(r["status"], 9), r["name"].casefold(), r["organization_id"])
    )
    known = data.organization_ids()
    page.stale = [
        {**r, "company_name": names.get(r["cw_company_id"], "")}
        for oid, r in sorted(mapped.items())
        if oid not in known
    ]
    page.companies = sorted(
        ({"id": i, "name": n} for i, n in names.items()), key=lambda c: (c["name"].casefold(), c["id"])
    )
    for r in page.rows:
        page.counts[r["status"]] = page.counts.get(r["status"], 0) + 1
    return page


def _mapping_row(
    m: Mapping[Hashable, Any],
    org: pd.Series,
    names: dict[int, str],
    cards: Mapping[int, dict[str, Any]],
    mapped: dict[str, Any] | None,
) -> dict[str, Any]:
    company_id = None if pd.isna(m["company_id"]) else int(m["company_id"])
    candidates = _candidate_ids(m["candidate_company_ids"])
    return {
        "organization_id": int(m["organization_id"]),
        "name": _text(org["name"]),
        "key": _text(org["key"]),
        "status": str(m["status"]),
        "match_rule": None if pd.isna(m["match_rule"]) else str(m["match_rule"]),
        "company_id": company_id,
        "company_name": names.get(company_id, "") if company_id is not None else "",
        "candidates": [_card(cards, c) for c in candidates],
        "detail": None if pd.isna(m["detail"]) else str(m["detail"]),
        "mapped": mapped,
        "mapped_company_name": names.get(mapped["cw_company_id"], "") if mapped else "",
    }


def _candidate_ids(value: Any) -> list[int]:
    """`candidate_company_ids` of a match ("20,21"): the ids, in order; none for NA."""
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return []
    return [int(c) for c in str(value).split(",") if c.strip().isdigit()]


def _card(cards: Mapping[int, dict[str, Any]], company_id: int) -> dict[str, Any]:
    return cards.get(company_id) or {"id": company_id, "name": "", "identifier": ""}


def _text(value: Any) -> str:
    return (
        "" if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)) else str(value)
    )


# --- the company picker ---------------------------------------------------------------------------

SEARCH_LIMIT = 20  # companies one search shows; the rest are counted ("type more")


@dataclass
class CompanySearch:
    """What a search of the newest run's companies found: the best `limit`, and how many in all."""

    query: str
    run_id: str | None
    matches: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


def staged_companies(engine: Engine, *, tenant: str) -> tuple[str | None, list[dict[str, Any]]]:
    """The companies of the run `staged` reads (the newest that staged organizations): the same
    ones a mapping is checked against, so the picker never offers a company the map refuses."""
    run_id = store.newest_staged_run(engine, "organizations", tenant=tenant)
    if run_id is None:
        return None, []
    t = store.staging_table("companies")
    stmt = (
        sa.select(t.c.company_id, t.c.identifier, t.c.name)
        .where(t.c.tenant == tenant, t.c.run_id == run_id, t.c.company_id.is_not(None))
        .order_by(t.c[store.ROW_COLUMN])
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    seen: dict[int, dict[str, Any]] = {}
    for company_id, identifier, name in rows:
        seen.setdefault(
            int(company_id), {"id": int(company_id), "name": name or "", "identifier": identifier or ""}
        )
    return run_id, list(seen.values())


def search_companies(engine: Engine, query: str, limit: int = SEARCH_LIMIT, *, tenant: str) -> CompanySearch:
    """Companies of the newest run whose id is `query`, or whose name or identifier contains it
    (case-insensitive; names also as the matching rules fold them, so "blue bird" finds
    "Blue-Bird Dental"). Best first: the id, an exact identifier, an exact name, a name starting
    with it, then the rest; ties by name. An empty query finds nothing."""
    run_id, companies = staged_companies(engine, tenant=tenant)
    found = CompanySearch(query=query, run_id=run_id)
    if not query:
        return found
    ranked = [
        (rank, c["name"].casefold(), c["id"], c)
        for c in companies
        if (rank := _search_rank(c, query)) is not None
    ]
    ranked.sort(key=lambda r: r[:3])
    found.total = len(ranked)
    found.matches = [r[3] for r in ranked[:limit]]
    return found


def _search_rank(company: Mapping[str, Any], query: str) -> int | None:
    if query.isascii() and query.isdigit() and str(company["id"]) == query.lstrip("0"):
        return 0
    text = query.casefold()
    identifier = str(company["identifier"]).casefold()
    name = reconcile.normalize_name(str(company["name"]))
    wanted = reconcile.normalize_name(query)
    if identifier and identifier == text:
        return 1
    if wanted and name == wanted:
        return 2
    if wanted and name.startswith(wanted):
        return 3
    if wanted and wanted in name:
        return 4
    if text in identifier:
        return 5
    loose = _alnum(wanted)
    if loose and (loose in _alnum(name) or loose in _alnum(identifier)):
        return 6
    return None


def _alnum(text: str) -> str:
    return "".join(ch for ch in text if ch.isalnum())


# --- the quarantine, grouped by organization or company -----------------------------------------------


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


def group_key(row: Mapping[str, Any]) -> str:
    """`_group_key` of a row dict, for rows read without it (the CSV export)."""
    if row.get("cw_company_id") is not None:
        return f"company:{row['cw_company_id']}"
    if row.get("huntress_organization_id") is not None:
        return f"organization:{row['huntress_organization_id']}"
    return f"key:{row['sync_key']}"


def _quarantine_where(filters: Mapping[str, Any], tenant: str) -> list[sa.ColumnElement[bool]]:
    """The filters of `store.list_quarantine` (`QuarantineFilter.store_filters()`), as Core clauses."""
    q = store.quarantine
    where: list[sa.ColumnElement[bool]] = [q.c.tenant == tenant]
    for name in ("status", "billing_date", "reason_code", "run_id"):
        if filters.get(name) is not None:
            where.append(q.c[name] == filters[name])
    if filters.get("company_id") is not None:
        where.append(q.c.cw_company_id == int(filters["company_id"]))
    return where


GROUP_KEY = re.compile(r"(company|organization):(\d{1,19})|key:(.{1,500})", re.S)


def open_group_rows(
    engine: Engine, key: str, filters: Mapping[str, Any], *, tenant: str
) -> list[dict[str, Any]]:
    """The tenant's open rows of one group (`group_key`, e.g. "company:369") that the list's
    `filters` keep (billing date, reason, run; their status is ignored: only open rows are taken),
    oldest id first: what a decision on the whole card acts on."""
    q = store.quarantine
    kept = {**filters, "status": "open"}
    stmt = sa.select(q).where(*_quarantine_where(kept, tenant), _group_key() == key).order_by(q.c.id)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


@dataclass
class QuarantineGroup:
    key: str
    kind: str  # company | organization | key
    ident: int | None  # the company or organization id; None for a key group
    rows: list[dict[str, Any]]  # the group's rows on this page
    company: dict[str, Any] | None = None  # company groups: id, name, identifier (as staged)
    organizations: list[dict[str, Any]] = field(default_factory=list)  # id and name, from the rows
    match: dict[str, Any] | None = None  # organization groups: see `organization_matches`
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
    filters: Mapping[str, Any],
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
    engine: Engine, filters: Mapping[str, Any], *, tenant: str, limit: int, offset: int, order: str = "seen"
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
        groups[-1].rows.append(row)
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
            g.company = _card(cards, g.ident)
        elif g.kind == "organization" and g.ident is not None:
            g.match = matches.get(g.ident)


def organization_matches(
    engine: Engine, data: Staged, org_ids: Iterable[int], *, tenant: str
) -> dict[int, dict[str, Any]]:
    """How each organization matches with the newest run's frames and today's billing_org_map:

    ``staged`` (whether the newest run saw it: only those can be mapped here), ``status``
    (matched, unmapped, ambiguous), ``rule``, ``company`` (the matched company's card),
    ``candidates`` (cards of an ambiguous match), ``mapped`` (its billing_org_map row, if any).
    """
    wanted = set(org_ids)
    org_map = store.list_org_map(engine, tenant=tenant)
    mapped = {r["huntress_organization_id"]: r for r in org_map if r["huntress_organization_id"] in wanted}
    out: dict[int, dict[str, Any]] = {
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
        out[int(m["organization_id"])].update(
            staged=True,
            status=str(m["status"]),
            rule=None if pd.isna(m["match_rule"]) else str(m["match_rule"]),
            company=_card(cards, company_id) if company_id is not None else None,
            candidates=[_card(cards, c) for c in _candidate_ids(m["candidate_company_ids"])],
        )
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
    engine: Engine, filters: Mapping[str, Any], *, tenant: str, batch: int = EXPORT_BATCH
) -> Iterator[dict[str, Any]]:
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
                yield {
                    **r,
                    "group": r["group_key"],
                    "company_name": names.get(company, "") if company is not None else "",
                }
        finally:
            result.close()


# --- the runs pages --------------------------------------------------------------------------------


def count_runs(engine: Engine, *, tenant: str) -> int:
    """How many runs the tenant has on record (the runs list's total)."""
    r = store.runs
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).where(r.c.tenant == tenant)).scalar_one())


def held_amounts(
    engine: Engine, by: tuple[str, ...], *, tenant: str, status: str | None = None, run_id: str | None = None
) -> dict[tuple[str, ...], float]:
    """`charts.held_by_product` / `held_by_date` summed by the database: the amount at stake per
    `by` ("product", or "billing_date" and "product") over the tenant's rows that carry one, so a
    chart reads one row per product and date, not every quarantine row. Keys as those functions
    make them (text, "" for none)."""
    q = store.quarantine
    where = [q.c.tenant == tenant, q.c.amount_at_stake.is_not(None)]
    if status is not None:
        where.append(q.c.status == status)
    if run_id is not None:
        where.append(q.c.run_id == run_id)
    fields = [q.c[f] for f in by]
    stmt = sa.select(*fields, sa.func.sum(q.c.amount_at_stake)).where(*where).group_by(*fields)
    with engine.connect() as conn:
        return {
            tuple("" if v is None else str(v) for v in row[:-1]): float(row[-1]) for row in conn.execute(stmt)
        }


# --- report files ---------------------------------------------------------------------------------


def report_dir(run: dict[str, Any], root: Path) -> Path | None:
    """The run's report directory, only if it exists and lies inside the reports root.

    report_path comes from the database; refusing anything outside the root keeps a bad or
    tampered row from turning the file route into a reader of arbitrary server directories.
    """
    raw = run.get("report_path")
    if not raw:
        return None
    path = Path(raw).resolve()
    if not path.is_dir() or not path.is_relative_to(root.resolve()):
        return None
    return path


def report_files(directory: Path | None) -> list[dict[str, Any]]:
    """Servable files directly in the directory, report.html first."""
    if directory is None:
        return []
    files = [p for p in directory.iterdir() if _servable(directory, p)]
    files.sort(key=lambda p: (p.name != REPORT_FILE, p.suffix != ".html", p.name))
    return [{"name": p.name, "size": p.stat().st_size} for p in files]


def report_file(directory: Path | None, name: str) -> Path | None:
    """The named file of the directory, or None: no separators, no dot-files, no symlink escapes,
    nothing a file system refuses with an error (a NUL, a name past 255 characters)."""
    if directory is None or not name or name != Path(name).name or name.startswith("."):
        return None
    if len(name) > 255 or not name.isprintable():
        return None
    path = directory / name
    return path if _servable(directory, path) else None


def _servable(directory: Path, path: Path) -> bool:
    if path.name.startswith(".") or path.suffix.lower() not in REPORT_TYPES:
        return False
    # resolve() follows symlinks, so a link pointing out of the directory fails the parent test.
    real = path.resolve()
    return real.parent == directory.resolve() and real.is_file()
