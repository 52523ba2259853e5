"""Files people open are safe to open: one folder per run id inside the reports root, and no CSV
a run writes holds a text cell a spreadsheet would run as a formula."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from billing_sandbox.generate import generate
from billing_sandbox.memory import MemorySources
from billing_sync import csvfile, report, store
from billing_sync.review.queries.reports import report_dir
from tests.proof.helpers import run_steps

DAY = "2026-11-01"
HOSTILE_RUN_IDS = [
    "a:b",
    "a_b",
    "a/b",
    ".",
    "..",
    "../x",
    "../../etc",
    "/etc/passwd",
    "",
    ".hidden",
    "x" * 300,
]


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "reports"
    monkeypatch.setenv("BILLING_SYNC_REPORTS_DIR", str(path))
    return path


# -- folder names ----------------------------------------------------------------------------------
def test_run_ids_that_read_alike_get_their_own_folders(root: Path) -> None:
    folders = [report.run_directory(DAY, r, "default") for r in HOSTILE_RUN_IDS]
    assert len(set(folders)) == len(HOSTILE_RUN_IDS), "one folder per run id"
    assert report.run_directory(DAY, "a:b", "default") != report.run_directory(DAY, "a_b", "default")
    assert report.run_directory(DAY, "a:b", "default") == report.run_directory(DAY, "a:b", "default"), (
        "the same run, the same folder"
    )


@pytest.mark.parametrize("run_id", HOSTILE_RUN_IDS)
def test_no_run_id_writes_outside_its_billing_date_folder(root: Path, run_id: str) -> None:
    folder = report.run_directory(DAY, run_id, "default")
    assert folder.is_dir()
    assert folder.resolve().parent == (root / DAY).resolve(), "a child of <root>/<billing date>"
    assert folder.name not in ("", ".", "..") and not folder.name.startswith(".")
    assert "/" not in folder.name and len(folder.name) < 255
    assert sorted(p.name for p in root.iterdir()) == [DAY], "nothing else in the reports root"


def test_folder_names_keep_the_run_id_readable() -> None:
    name = report.run_folder_name("manual__2026-11-01T00:00:00+00:00")
    assert re.fullmatch(r"manual__2026-11-01T00_00_00_00_00-[0-9a-f]{12}", name), name
    assert name == "manual__2026-11-01T00_00_00_00_00-8913a730bdad", "stable across versions and machines"
    assert report.run_folder_name("..").startswith("run-")


def test_a_billing_date_that_is_not_a_date_is_refused(root: Path) -> None:
    for bad in ("..", "../2026-11-01", "2026-11-01/..", ""):
        with pytest.raises(ValueError):
            report.run_directory(bad, "r1", "default")
    assert not root.exists() or list(root.iterdir()) == []


# -- every CSV of a whole run ----------------------------------------------------------------------
# Names from Huntress and ConnectWise shaped like spreadsheet formulas (OWASP CSV injection).
ORG_NAMES = {
    138: '=HYPERLINK("http://x","y")',  # in no ConnectWise company: quarantined with its name
    101: "-1",
    105: "+1",
    112: "@SUM(A1)",
    124: "\tTab Org",
    133: "\rCR Org",
}
COMPANY_NAMES = ["=1+2", "+Company", "-Company", "@Company"]
RUN_ID = "manual__2026-11-01T00:00:00+00:00"
NUMBER = re.compile(r"[+-]?\d+(\.\d+)?([eE][+-]?\d+)?")


def _hostile_scenario() -> dict:
    scenario = generate(40, 7)
    for org in scenario["huntress"]["organizations"]:
        org["name"] = ORG_NAMES.get(org["id"], org["name"])
    # Companies that match organizations by key (case-insensitive): their names may be anything.
    keys = {o["key"].casefold() for o in scenario["huntress"]["organizations"] if o["id"] in ORG_NAMES}
    companies = [c for c in scenario["connectwise"]["companies"] if c["identifier"].casefold() in keys]
    assert len(companies) >= len(COMPANY_NAMES)
    for company, name in zip(companies, COMPANY_NAMES, strict=False):
        company["name"] = name
    return scenario


def _cells(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_every_csv_of_a_run_is_safe_to_open(tmp_path: Path, root: Path) -> None:
    sources = MemorySources(_hostile_scenario())  # the run's data, not the wire
    eng = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(eng)
    run = run_steps(eng, RUN_ID, DAY, sources=sources)
    assert run.error is None, run.describe()

    folder = Path(run.result["report_dir"])
    assert folder == report.run_directory(DAY, RUN_ID, "default")
    record = store.get_run(eng, RUN_ID, tenant="default")
    assert record["report_path"] == str(folder)
    assert report_dir(record, root) == folder.resolve(), "the review pages find the folder"

    written = sorted(root.rglob("*.csv"))
    assert {p.name for p in written} == {"changes.csv", "quarantine.csv", "totals.csv", "outcomes.csv"}
    names_seen: dict[str, set[str]] = {}
    negative_numbers = 0
    for path in written:
        rows = _cells(path)
        for row in rows:
            for column, cell in row.items():
                if column.endswith(("name", "names")):
                    names_seen.setdefault(path.name, set()).add(cell)
                if cell.startswith(csvfile.FORMULA_START):
                    # Only a number may start so: -5 is a difference, never a formula.
                    assert NUMBER.fullmatch(cell), f"{path.name} {column}: {cell!r} would run as a formula"
                    negative_numbers += cell.startswith("-")
    all_names = set().union(*names_seen.values())
    for name in [*ORG_NAMES.values(), *COMPANY_NAMES]:
        assert "'" + name in all_names, f"{name!r} is written, defused"
        assert name not in all_names, f"{name!r} is written as it came"
    assert "'" + ORG_NAMES[138] in names_seen["outcomes.csv"] & names_seen["quarantine.csv"]
    assert negative_numbers, "numbers below zero are written as numbers (totals' differences)"
