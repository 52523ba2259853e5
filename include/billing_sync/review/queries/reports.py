"""A run's report files, as the run page lists and serves them.

Only files directly in a report directory inside the reports root, of the types in `REPORT_TYPES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from billing_sync import store
from billing_sync.report import REPORT_FILE

REPORT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/plain; charset=utf-8",
}


class ReportFile(TypedDict):
    name: str
    size: int  # bytes


def report_dir(run: store.RunRecord, root: Path) -> Path | None:
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


def report_files(directory: Path | None) -> list[ReportFile]:
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
