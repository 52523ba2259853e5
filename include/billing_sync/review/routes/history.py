"""The decision history (`store.decisions`): who decided what, when, and what it was before and after.

    GET  /history?company=<id>|organization=<id>|row=<id>   the tenant's entries, newest first, paged
    GET  /history/export.csv?...                           the same entries (every page) as CSV, streamed

Reading only, for any reader: the history is never changed here (nor anywhere: the store appends,
the database refuses UPDATE and DELETE). A quarantine row's own page shows that row's entries
(`routes.quarantine`); company names on the pages link here. All of it the page's tenant's
(`deps.TenantDep`).
"""

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from sqlalchemy.engine import Engine

from billing_sync import csvfile, store
from billing_sync.review.deps import ContextDep, EngineDep, ReaderDep, TenantDep
from billing_sync.review.inputs import optional_id, parse_page
from billing_sync.review.queries import staging

router = APIRouter(prefix="/history")


@dataclass(frozen=True)
class HistoryFilter:
    """What the history is about: a company, an organization, a quarantine row (all optional)."""

    company: int | None = None
    organization: int | None = None
    row: int | None = None

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> "HistoryFilter":
        return cls(
            company=optional_id(params.get("company"), "company"),
            organization=optional_id(params.get("organization"), "organization"),
            row=optional_id(params.get("row"), "row"),
        )

    def query(self) -> dict[str, int | None]:
        return {"company": self.company, "organization": self.organization, "row": self.row}


@router.get("", response_class=HTMLResponse)
def history_page(
    request: Request, reviewer: ReaderDep, context: ContextDep, eng: EngineDep, tenant: TenantDep
) -> HTMLResponse:
    about = HistoryFilter.parse(request.query_params)
    page = parse_page(request.query_params.get("page"))
    size = context.page_size()
    # One more than a page: whether there is a next page, without counting the whole history.
    entries = store.list_decisions(
        eng,
        tenant=tenant.id,
        company_id=about.company,
        organization_id=about.organization,
        quarantine_id=about.row,
        limit=size + 1,
        offset=(page - 1) * size,
    )
    return context.render(
        request,
        reviewer,
        "history.html",
        entries=[describe(e) for e in entries[:size]],
        more=len(entries) > size,
        page=page,
        about=about,
        companies=staging.company_names(eng, tenant=tenant.id),
    )


@router.get("/export.csv")
def history_export(request: Request, _: ReaderDep, eng: EngineDep, tenant: TenantDep) -> StreamingResponse:
    """Every entry the filters keep, as CSV, written while it is read (a batch at a time)."""
    about = HistoryFilter.parse(request.query_params)  # before the response starts: a bad one is a 400
    name = "-".join(
        [
            "billing-decisions",
            *tenant.query().values(),
            *(f"{k}{v}" for k, v in about.query().items() if v is not None),
            datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        ]
    )
    return StreamingResponse(
        csv_lines(eng, tenant.id, about),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}.csv"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def csv_lines(eng: Engine, tenant: str, about: HistoryFilter) -> Iterator[str]:
    """The CSV a line at a time: the header, then one line per entry (cells by `csvfile.cell`, so
    third-party text in a note or a name is defused as in every CSV of the project)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)

    def line(cells: list[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield line([csvfile.defuse(c) for c in store.DECISION_COLUMNS])
    entries = store.iter_decisions(
        eng,
        tenant=tenant,
        company_id=about.company,
        organization_id=about.organization,
        quarantine_id=about.row,
    )
    for entry in entries:
        yield line([csvfile.cell(entry.get(c)) for c in store.DECISION_COLUMNS])


class DescribedEntry(store.DecisionEntry):
    """An entry as the pages show it: with `changes`, (field, before, after) for each field that
    differs (every field of the side there is, when the subject was made or removed)."""

    changes: list[tuple[str, object, object]]


def describe(entry: store.DecisionEntry) -> DescribedEntry:
    """The entry for the page (`DescribedEntry`)."""
    before, after = entry["before"] or {}, entry["after"] or {}
    fields = sorted((set(before) | set(after)) - {"tenant"})  # the page's tenant already
    changes = [(f, before.get(f), after.get(f)) for f in fields if before.get(f) != after.get(f)]
    return {**entry, "changes": changes}
