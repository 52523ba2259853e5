"""The one CSV writer: every CSV the project writes for people goes through here.

Names in these files come from Huntress and ConnectWise, so they are third-party text: a cell that
starts like a formula (`=HYPERLINK(...)`, `+1`, `-1`, `@SUM(...)`) runs as one when the file is
opened in a spreadsheet. Following OWASP's recommendation for CSV injection
(https://owasp.org/www-community/attacks/CSV_Injection), a *text* cell starting with `=`, `+`, `-`,
`@`, tab or carriage return gets a leading `'`, which spreadsheets take as "this is text".

Numbers stay numbers: an int or float (a quantity delta of -1) is written as the number it is, so a
spreadsheet still sums it; only text is defused, and the text "-1" (an organization's name) is.
The rest of a cell's quoting is the csv module's (RFC 4180: a separator, quote or line break inside
a cell never starts a new one).

The bottom layer: imports nothing else of ours.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from numbers import Number
from pathlib import Path
from typing import IO, Any, Protocol

import pandas as pd

# A text cell starting with one of these runs as a formula in Excel, LibreOffice Calc or Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class Record(Protocol):
    """A row of any kind: a dict, a TypedDict record, anything that gives a column's value by name."""

    def get(self, key: str, /) -> object: ...


def defuse(text: str) -> str:
    """`text` with a leading `'` when it starts like a formula; otherwise unchanged."""
    return "'" + text if text.startswith(FORMULA_START) else text


def cell(value: Any) -> str:
    """One CSV cell: empty for missing, ISO dates, whole numbers without ".0", JSON for structures,
    every text defused; numbers are never defused."""
    if _missing(value):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, Number):  # int, bool, numpy and Decimal numbers: the number, never text
        return str(value)
    if isinstance(value, datetime | date):
        return defuse(value.isoformat())
    if isinstance(value, dict | list):
        return defuse(json.dumps(value, ensure_ascii=False, sort_keys=True))
    return defuse(str(value))


def write_rows(path: Path, rows: Iterable[Record], columns: Sequence[str]) -> None:
    """Write `rows` (mappings; a missing key is an empty cell) as `columns`, UTF-8, to `path`."""
    with path.open("w", newline="", encoding="utf-8") as f:
        _write(f, rows, columns)


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Write a DataFrame (its columns, no index) to `path` the same way as `write_rows`."""
    write_rows(path, _records(frame), [str(c) for c in frame.columns])


def rows_text(rows: Iterable[Record], columns: Sequence[str]) -> str:
    """The same CSV as `write_rows`, as text: for a download built in memory."""
    buffer = io.StringIO(newline="")
    _write(buffer, rows, columns)
    return buffer.getvalue()


def iter_text(rows: Iterable[Record], columns: Sequence[str], batch: int = 500) -> Iterator[str]:
    """The same CSV as `rows_text`, in pieces of `batch` rows (the first with the header): for a
    download streamed from a query, so no more than a batch is ever held."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(_header(columns))
    for n, row in enumerate(rows, 1):
        writer.writerow(_line(row, columns))
        if n % batch == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def frame_text(frame: pd.DataFrame) -> str:
    """The same CSV as `write_frame`, as text: for a download built in memory."""
    return rows_text(_records(frame), [str(c) for c in frame.columns])


def _write(f: IO[str], rows: Iterable[Record], columns: Sequence[str]) -> None:
    writer = csv.writer(f)
    writer.writerow(_header(columns))
    for row in rows:
        writer.writerow(_line(row, columns))


def _header(columns: Sequence[str]) -> list[str]:
    return [defuse(str(c)) for c in columns]


def _line(row: Record, columns: Sequence[str]) -> list[str]:
    return [cell(row.get(c)) for c in columns]


def _records(frame: pd.DataFrame) -> list[Record]:
    # to_dict boxes numpy and nullable values as Python ones (int, float, None), keeping numbers numbers.
    return [{str(k): v for k, v in r.items()} for r in frame.to_dict("records")]


def _missing(value: Any) -> bool:
    """None, NaN, pandas NA/NaT; never a container or text."""
    return value is None or (
        not isinstance(value, str | bytes | dict | list | tuple) and bool(pd.isna(value))
    )
