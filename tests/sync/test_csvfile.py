"""The one CSV writer: text that a spreadsheet would run as a formula is defused, numbers stay numbers."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from billing_sync import csvfile

# OWASP CSV injection (https://owasp.org/www-community/attacks/CSV_Injection): cells starting so.
FORMULAS = ['=HYPERLINK("http://x","y")', "+1", "-1", "@SUM(A1)", "\tx", "\rx", "=1+2", "-"]
PLAIN = ["Acme Corp", "O'Brien & Søn", "1-800 Flowers", "a=b", " =not at the start", "'quoted", ""]


def _read(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.parametrize("text", FORMULAS)
def test_text_starting_like_a_formula_gets_a_leading_quote(text: str) -> None:
    assert csvfile.cell(text) == "'" + text
    assert csvfile.defuse(text) == "'" + text


@pytest.mark.parametrize("text", PLAIN)
def test_other_text_is_left_alone(text: str) -> None:
    assert csvfile.cell(text) == text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (-1, "-1"),
        (-1.0, "-1"),
        (-1.5, "-1.5"),
        (+3, "3"),
        (np.int64(-7), "-7"),
        (np.float64(-2.0), "-2"),
        (Decimal("-0.25"), "-0.25"),
        (True, "True"),
    ],
)
def test_numbers_stay_numbers(value: object, written: str) -> None:
    assert csvfile.cell(value) == written


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA, pd.NaT, np.nan])
def test_missing_values_are_empty(missing: object) -> None:
    assert csvfile.cell(missing) == ""


def test_dates_and_structures() -> None:
    assert csvfile.cell(date(2026, 11, 1)) == "2026-11-01"
    assert csvfile.cell(datetime(2026, 11, 1, 6, tzinfo=UTC)) == "2026-11-01T06:00:00+00:00"
    assert csvfile.cell({"b": "-1", "a": 1}) == '{"a": 1, "b": "-1"}'
    assert csvfile.cell(["=x"]) == '["=x"]'


def test_write_rows_round_trips_through_a_spreadsheet_reader(tmp_path: Path) -> None:
    names = [*FORMULAS, *PLAIN, 'comma, "quote"\nnewline']
    rows = [{"name": n, "delta": -1, "quantity": 2.0} for n in names]
    path = tmp_path / "rows.csv"
    csvfile.write_rows(path, rows, ["name", "delta", "quantity", "absent"])
    header, *body = _read(path)
    assert header == ["name", "delta", "quantity", "absent"]
    assert [r[0] for r in body] == [csvfile.defuse(n) for n in names]
    assert {tuple(r[1:]) for r in body} == {("-1", "2", "")}, "numbers are written as numbers"
    assert csvfile.rows_text(rows, ["name", "delta", "quantity", "absent"]) == path.read_bytes().decode(
        "utf-8"
    )


def test_write_frame_defuses_text_columns_and_keeps_numeric_ones(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "organization_names": pd.array(["-1", '=HYPERLINK("http://x","y")', "Acme", None], "string"),
            "company_id": pd.array([250, None, -1, 3], "Int64"),
            "previous_quantity": pd.array([-1.0, 2.5, None, 40.0], "Float64"),
            "plain_int": np.array([-1, 0, 1, 2]),
            "mixed": pd.Series(["+1", -1, None, "@SUM(A1)"], dtype="object"),
        }
    )
    path = tmp_path / "outcomes.csv"
    csvfile.write_frame(path, frame)
    header, *body = _read(path)
    assert header == list(frame.columns)
    assert [r[0] for r in body] == ["'-1", '\'=HYPERLINK("http://x","y")', "Acme", ""]
    assert [r[1] for r in body] == ["250", "", "-1", "3"]
    assert [r[2] for r in body] == ["-1", "2.5", "", "40"]
    assert [r[3] for r in body] == ["-1", "0", "1", "2"]
    assert [r[4] for r in body] == ["'+1", "-1", "", "'@SUM(A1)"]
    assert csvfile.frame_text(frame) == path.read_bytes().decode("utf-8")
