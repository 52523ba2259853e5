"""What the pages show, read through billing_sync.store: mapping rows, report files, company names."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pandas as pd
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store
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


@dataclass
class MappingPage:
    run_id: str | None
    rows: list[dict[str, Any]] = field(default_factory=list)
    companies: list[dict[str, Any]] = field(default_factory=list)
    stale: list[dict[str, Any]] = field(default_factory=list)  # org_map rows of organizations not staged
    counts: dict[str, int] = field(default_factory=dict)


def staged(engine: Engine) -> Staged:
    """Frames of the newest run that staged organizations (a failed early run stages nothing)."""
    run_id = store.newest_staged_run(engine, "organizations")
    if run_id is None:
        return Staged(
            None,
            pd.DataFrame(columns=["organization_id", "name", "key"]),
            pd.DataFrame(columns=["company_id", "identifier", "name"]),
        )
    return Staged(
        run_id,
        store.read_frame(engine, run_id, "organizations"),
        store.read_frame(engine, run_id, "companies"),
    )


def company_names(engine: Engine) -> dict[int, str]:
    """`staged(engine).company_names()` without reading the organizations."""
    run_id = store.newest_staged_run(engine, "organizations")
    return {} if run_id is None else _company_names(store.read_frame(engine, run_id, "companies"))


def _company_names(companies: pd.DataFrame) -> dict[int, str]:
    c = companies.dropna(subset=["company_id"])
    return {int(i): _text(n) for i, n in zip(c["company_id"], c["name"], strict=True)}


def mapping_page(engine: Engine, data: Staged) -> MappingPage:
    """Every staged organization with its company and rule; unmatched and ambiguous first."""
    page = MappingPage(run_id=data.run_id)
    if data.run_id is None:
        return page
    org_map = store.list_org_map(engine)
    mapped = {r["huntress_organization_id"]: r for r in org_map}
    matches = reconcile.match_organizations(
        data.organizations, data.companies, store.org_map_rows_frame(org_map)
    )
    names = data.company_names()
    orgs = data.organizations.drop_duplicates("organization_id").set_index("organization_id")
    for m in matches.to_dict("records"):
        org_id = int(m["organization_id"])
        org = cast(pd.Series, orgs.loc[org_id])  # one row: the index is unique (drop_duplicates)
        page.rows.append(_mapping_row(m, org, names, mapped.get(org_id)))
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
    m: Mapping[Hashable, Any], org: pd.Series, names: dict[int, str], mapped: dict[str, Any] | None
) -> dict[str, Any]:
    company_id = None if pd.isna(m["company_id"]) else int(m["company_id"])
    candidates = (
        []
        if pd.isna(m["candidate_company_ids"])
        else [int(c) for c in str(m["candidate_company_ids"]).split(",") if c.strip().isdigit()]
    )
    return {
        "organization_id": int(m["organization_id"]),
        "name": _text(org["name"]),
        "key": _text(org["key"]),
        "status": str(m["status"]),
        "match_rule": None if pd.isna(m["match_rule"]) else str(m["match_rule"]),
        "company_id": company_id,
        "company_name": names.get(company_id, "") if company_id is not None else "",
        "candidates": [{"id": c, "name": names.get(c, "")} for c in candidates],
        "detail": None if pd.isna(m["detail"]) else str(m["detail"]),
        "mapped": mapped,
        "mapped_company_name": names.get(mapped["cw_company_id"], "") if mapped else "",
    }


def _text(value: Any) -> str:
    return (
        "" if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)) else str(value)
    )


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
