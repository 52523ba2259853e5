"""The run's reconciliation report: a self-contained, escaped HTML page and CSVs that match the DB."""

from __future__ import annotations

import csv
import json
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sqlalchemy as sa

from billing_sync import frames, report, store
from billing_sync.names import REASON_HELP

RUN_ID = "manual__2026-11-01T00:00:00+00:00"
DAY = date(2026, 11, 1)
EVIL = '<script>alert("x")</script> O\'Brien & Søn ™ {{ 7*7 }}zq'
REF = {
    "tenant": "default",
    "run_id": RUN_ID,
    "billing_date": DAY.isoformat(),
    "mode": "push",
    "invoice_id": 5001,
    "invoice": {"id": 5001, "created_at": "2026-11-01T06:00:00Z", "quantity": 52},
    "settings": {"products": {"edr": "HUNTRESS-EDR", "itdr": "HUNTRESS-ITDR"}},
}
CHECKS = {
    "products": {
        "edr": {"huntress": 52, "connectwise_before": 45.0, "connectwise_after": 47.0, "difference": -5.0},
        "itdr": {"huntress": 12, "connectwise_before": 12.0, "connectwise_after": 12.0, "difference": 0.0},
    },
    "mismatches": ["edr: Huntress bills 52, ConnectWise bills 47 after the push"],
    "invoice_quantity": {"invoice": 52, "sum_of_line_edr": 52, "invalid_edr_lines": 0},
}
COUNTS = {
    "updated": 1,
    "unchanged": 1,
    "planned": 0,
    "not_applicable": 0,
    "quarantined": 2,
    "change": 0,
    "failed": 0,
    "no_live_addition": 1,
    "change_exceeds_limit": 1,
    "total": 4,
}


@pytest.fixture
def eng(tmp_path: Path):
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    store.ensure_schema(engine)
    store.start_run(engine, RUN_ID, DAY, 5001, "push", REF["settings"], tenant="default")
    store.write_frame(
        engine,
        RUN_ID,
        "companies",
        frames.companies_frame(
            [
                {"id": 250, "identifier": "acme", "name": EVIL},
                {"id": 251, "identifier": "beta", "name": "Beta GmbH"},
            ]
        ),
        tenant="default",
    )
    store.record_changes(
        engine,
        RUN_ID,
        DAY,
        [
            {
                "sync_key": "company:250:edr",
                "cw_company_id": 250,
                "agreement_id": 1578,
                "addition_id": 501,
                "product": "edr",
                "huntress_quantity": 40,
                "previous_quantity": 38.0,
                "new_quantity": 40,
                "action": "updated",
            },
            {
                "sync_key": "company:251:itdr",
                "cw_company_id": 251,
                "agreement_id": 1579,
                "addition_id": 502,
                "product": "itdr",
                "huntress_quantity": 12,
                "previous_quantity": 12.0,
                "new_quantity": 12,
                "action": "unchanged",
            },
        ],
        tenant="default",
    )
    store.upsert_quarantine(
        engine,
        RUN_ID,
        DAY,
        [
            {
                "sync_key": "organization:101:edr",
                "huntress_organization_id": 101,
                "huntress_organization_name": EVIL,
                "product": "edr",
                "reason_code": "no_live_addition",
                "detail": f"no addition for {EVIL}",
                "payload": {"usage": 3},
            },
            {
                "sync_key": "company:251:edr",
                "cw_company_id": 251,
                "huntress_organization_name": '=HYPERLINK("x")',
                "product": "edr",
                "reason_code": "change_exceeds_limit",
                "detail": "5 → 40 exceeds the guard",
                "payload": None,
            },
        ],
        tenant="default",
    )
    store.finish_run(engine, RUN_ID, "success", COUNTS, CHECKS, "/somewhere", tenant="default")
    yield engine
    engine.dispose()


@pytest.fixture
def written(eng, tmp_path: Path) -> Path:
    out = tmp_path / "report"
    out.mkdir()
    (out / "validation.json").write_text("[]")
    links = {"airflow_run": "http://airflow.example/dags/d/runs/r", "report_page": "http://airflow.example/p"}
    return report.write_report(eng, REF, {"counts": COUNTS, "checks": CHECKS, "links": links}, out)


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    return parser


def test_report_escapes_markup_and_is_self_contained(written: Path) -> None:
    page = written.read_text(encoding="utf-8")
    parsed = _parse(page)
    tags = {t for t, _ in parsed.tags}
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    assert not any("src" in attrs for _, attrs in parsed.tags)
    assert "&lt;script&gt;" in page and "<script>" not in page
    text = "".join(parsed.text)
    assert EVIL in text, "the name reads back exactly, as text"
    assert "{{ 7*7 }}zq" in text and "49zq" not in text, "names are data, never template"
    assert '<meta charset="utf-8">' in page


def test_report_has_header_totals_changes_quarantine_and_help(written: Path) -> None:
    text = " ".join(" ".join(_parse(written.read_text(encoding="utf-8")).text).split())
    for expected in ("2026-11-01", "5001", "push", "success", RUN_ID):
        assert expected in text
    for section in ("Outcomes", "Totals: Huntress vs ConnectWise", "Changes", "Needs review: quarantine"):
        assert section in text
    assert "edr: Huntress bills 52, ConnectWise bills 47 after the push" in text
    assert "HUNTRESS-EDR 52 45 47 -5" in text, "totals row: huntress, before, after, difference"
    assert "updated" in text and "38 40 +2 updated" in text, "the change: old, new, delta, action"
    assert "1 addition(s) already carried the Huntress quantity" in text
    for code in ("no_live_addition", "change_exceeds_limit"):
        assert code in text
        assert " ".join(REASON_HELP[code].split()) in text
    hrefs = {a.get("href") for t, a in _parse(written.read_text(encoding="utf-8")).tags if t == "a"}
    assert {
        "validation.json",
        "changes.csv",
        "quarantine.csv",
        "totals.csv",
        "http://airflow.example/dags/d/runs/r",
        "http://airflow.example/p",
    } <= hrefs


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_changes_csv_matches_the_ledger(eng, written: Path) -> None:
    rows = _csv(written.parent / "changes.csv")
    db = store.changes_for_run(eng, RUN_ID, tenant="default")
    assert len(rows) == len(db) == 2
    for got, want in zip(rows, db, strict=True):
        assert int(got["id"]) == want["id"] and got["sync_key"] == want["sync_key"]
        assert got["action"] == want["action"] and got["product"] == want["product"]
        assert float(got["previous_quantity"]) == want["previous_quantity"]
        assert float(got["new_quantity"]) == want["new_quantity"]
        assert int(got["addition_id"]) == want["addition_id"] and got["billing_date"] == "2026-11-01"
    assert rows[0]["company_name"] == EVIL and rows[1]["company_name"] == "Beta GmbH"


def test_quarantine_csv_matches_the_db_and_defuses_formulas(eng, written: Path) -> None:
    rows = {r["sync_key"]: r for r in _csv(written.parent / "quarantine.csv")}
    db = {q["sync_key"]: q for q in store.list_quarantine(eng, run_id=RUN_ID, limit=None, tenant="default")}
    assert set(rows) == set(db)
    for key, want in db.items():
        got = rows[key]
        assert int(got["id"]) == want["id"] and got["reason_code"] == want["reason_code"]
        assert got["status"] == want["status"] == "open"
        assert got["what_to_do"] == REASON_HELP[want["reason_code"]]
        assert (json.loads(got["payload"]) if got["payload"] else None) == want["payload"]
    assert rows["organization:101:edr"]["huntress_organization_name"] == EVIL
    assert rows["company:251:edr"]["huntress_organization_name"] == '\'=HYPERLINK("x")'


def test_totals_csv_matches_the_checks(written: Path) -> None:
    rows = _csv(written.parent / "totals.csv")
    assert [r["product"] for r in rows] == ["edr", "itdr"]
    edr = rows[0]
    assert edr["catalog_identifier"] == "HUNTRESS-EDR"
    assert (edr["huntress"], edr["connectwise_before"], edr["connectwise_after"], edr["difference"]) == (
        "52",
        "45",
        "47",
        "-5",
    )


def test_run_with_nothing_to_show_still_renders(tmp_path: Path) -> None:
    engine = store.make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    store.start_run(engine, "r1", DAY, None, "dry_run", {}, tenant="default")
    out = tmp_path / "r1"
    out.mkdir()
    page = report.write_report(
        engine,
        {"tenant": "default", "run_id": "r1", "billing_date": "2026-11-01", "mode": "dry_run"},
        {"counts": {"total": 0}, "checks": {}},
        out,
    ).read_text(encoding="utf-8")
    assert "Nothing was quarantined." in page and "No quantity changes." in page
    assert _csv(out / "changes.csv") == []
    with engine.connect() as c:
        assert c.execute(sa.text("select count(*) from billing_quarantine")).scalar() == 0


def test_text_summary_names_the_report_and_what_to_do(eng, written: Path) -> None:
    with eng.begin() as c:
        c.execute(sa.text("update billing_runs set report_path = :p"), {"p": str(written.parent)})
    text = report.run_summary_text(eng, "2026-11-01", tenant="default")
    assert str(written) in text
    assert REASON_HELP["no_live_addition"] in text


def test_operations_doc_lists_every_reason_with_its_help() -> None:
    doc = " ".join((Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text().split())
    for code, help_text in REASON_HELP.items():
        assert f"`{code}`" in doc and " ".join(help_text.split()) in doc, code
    assert "BILLING_SYNC_REPORTS_DIR" in doc and "billing_sync_smtp" in doc and "billing_sync_slack" in doc


def test_long_tables_are_cut_on_the_page_but_not_in_the_csvs(eng, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(report, "MAX_HTML_ROWS", 0)
    out = tmp_path / "cut"
    out.mkdir()
    page = report.write_report(eng, REF, {"counts": COUNTS, "checks": CHECKS}, out).read_text(
        encoding="utf-8"
    )
    assert "1 more change(s) in changes.csv" in page
    assert "1 more row(s) in quarantine.csv" in page
    assert len(_csv(out / "quarantine.csv")) == 2
