"""What the pages accept: ids, pages, filters, text, checked before use.

Ids, page numbers, run ids, list filters and text fields are checked before anything reaches the
database.

Anything else is a 400 with one plain sentence, never a 500 (issue 10 §4): `str.isdigit()` accepts
`²` and Arabic-Indic digits that `int()` refuses or reads, and SQLite and PostgreSQL refuse integers
past 2^63 - 1 with an exception, so ids are ASCII digits, at most 19 of them, at most 2^63 - 1.
"""

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Self, TypedDict

from fastapi import HTTPException, status

from billing_sync import store

ID_MAX = 2**63 - 1  # the largest SQL BIGINT
ID_DIGITS = len(str(ID_MAX))  # 19
NOTE_MAX = 2000  # notes and reasons people type
BACK_MAX = 2000  # the list's filters a form carries back (a query string)
RUN_ID_MAX = 250  # Airflow's own limit on a run id
REASON_MAX = 100
PAGE_MAX = 1_000_000  # page × page size stays far inside an SQL OFFSET
BODY_MAX = 64 * 1024  # a whole form: a few ids, a token and a note of NOTE_MAX characters fit many times
ID_RULE = f"a whole number of at most {ID_DIGITS} digits (0 to {ID_MAX})"
SEARCH_MAX = 200  # a company search: longer than any name or identifier a person types
BULK_MAX = 200  # organizations mapped by one bulk request
FIRST_BILLING_DATE = date(2000, 1, 1)  # a re-run of an earlier "billing date" is a typo, not a wish
VIEWS = ("groups", "rows")  # the quarantine list: grouped by organization/company (default), or flat


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_400_BAD_REQUEST, detail)


def is_id(value: str) -> bool:
    """ASCII digits only, at most 19 of them, and within a signed 64-bit integer."""
    return 0 < len(value) <= ID_DIGITS and value.isascii() and value.isdigit() and int(value) <= ID_MAX


def parse_id(value: str, name: str) -> int:
    if not is_id(value):
        raise bad_request(f"{name} must be {ID_RULE}")
    return int(value)


def optional_id(value: str | None, name: str) -> int | None:
    return None if value in (None, "") else parse_id(value, name)


def parse_page(value: str | None) -> int:
    """A 1-based page number; absent = 1, and 0 reads as 1."""
    if value in (None, ""):
        return 1
    if not is_id(value) or int(value) > PAGE_MAX:
        raise bad_request(f"page must be a whole number from 1 to {PAGE_MAX}")
    return max(int(value), 1)


def parse_company(raw: str) -> int | None:
    """The company id a person typed: None for a typing slip (letters, punctuation, nothing), which
    the form answers with its own message; 400 for what no keyboard slip makes (non-ASCII digits,
    more than 19 digits, past 2^63 - 1)."""
    value = raw.strip()
    if value.isascii() and not value.isdigit():
        return None
    return parse_id(value, "company_id")


def parse_ids(values: Sequence[str], name: str, limit: int = BULK_MAX) -> list[int]:
    """Several ids of one form field, each as `parse_id` takes it, duplicates dropped (first kept).
    All or nothing: more than `limit`, or any one of them malformed, refuses the whole request."""
    if len(values) > limit:
        raise bad_request(f"{name}: at most {limit} at once, not {len(values)}")
    ids = [parse_id(v, name) for v in values]
    return list(dict.fromkeys(ids))


def parse_search(value: str | None) -> str:
    """A search a person typed: at most SEARCH_MAX characters, no control characters; trimmed."""
    text = (value or "").strip()
    if len(text) > SEARCH_MAX:
        raise bad_request(f"q: a search is at most {SEARCH_MAX} characters")
    if _has_control(text):
        raise bad_request("q contains control characters")
    return text


def parse_billing_date(value: str, name: str = "billing_date") -> date:
    """A billing date to run again: YYYY-MM-DD, from FIRST_BILLING_DATE to today (UTC)."""
    try:
        day = date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise bad_request(f"{name} must be a date, YYYY-MM-DD")
    if not FIRST_BILLING_DATE <= day <= datetime.now(UTC).date():
        raise bad_request(f"{name} must lie between {FIRST_BILLING_DATE.isoformat()} and today")
    return day


def _has_control(value: str) -> bool:
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in value)


def check_run_id(value: str, name: str = "run_id") -> str:
    """A run id as Airflow allows it: at most 250 characters, no control characters (a NUL would
    reach PostgreSQL, which refuses it with an exception)."""
    if len(value) > RUN_ID_MAX:
        raise bad_request(f"{name} is longer than an Airflow run id can be ({RUN_ID_MAX} characters)")
    if _has_control(value):
        raise bad_request(f"{name} contains control characters")
    return value


class StoreFilters(TypedDict):
    """The quarantine list's filters as the queries take them (None: not filtered on)."""

    status: str | None
    billing_date: date | None
    reason_code: str | None
    company_id: int | None
    run_id: str | None


QueryValue = str | int | None  # a value of a page's query string (None: left out of the URL)


@dataclass(frozen=True)
class QuarantineFilter:
    status: str = "open"
    billing_date: date | None = None
    reason_code: str | None = None
    company_id: int | None = None
    run_id: str | None = None
    view: str = "groups"
    order: str = "seen"  # store.QUARANTINE_ORDERS: newest seen first, or most at stake first

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> Self:
        state = q.get("status") or "open"
        if state not in (*store.QUARANTINE_STATUSES, "all"):
            raise bad_request("status must be open, resolved, dismissed or all")
        try:
            day = date.fromisoformat(q["billing_date"]) if q.get("billing_date") else None
        except ValueError:
            raise bad_request("billing_date must be a date, YYYY-MM-DD") from None
        reason = q.get("reason_code") or None
        if reason is not None and not _is_reason_code(reason):
            raise bad_request("reason_code must be a reason code such as unmapped_organization")
        run_id = q.get("run_id") or None
        if run_id is not None:
            check_run_id(run_id)
        view = q.get("view") or "groups"
        if view not in VIEWS:
            raise bad_request("view must be groups or rows")
        order = q.get("order") or "seen"
        if order not in store.QUARANTINE_ORDERS:
            raise bad_request("order must be seen or amount")
        company = optional_id(q.get("company_id"), "company_id")
        return cls(state, day, reason, company, run_id, view, order)

    def store_filters(self) -> StoreFilters:
        return {
            "status": None if self.status == "all" else self.status,
            "billing_date": self.billing_date,
            "reason_code": self.reason_code,
            "company_id": self.company_id,
            "run_id": self.run_id,
        }

    def query(self) -> dict[str, QueryValue]:
        return {
            "status": self.status,
            "billing_date": self.billing_date.isoformat() if self.billing_date else None,
            "reason_code": self.reason_code,
            "company_id": self.company_id,
            "run_id": self.run_id,
            "view": None if self.view == "groups" else self.view,  # the default stays out of URLs
            "order": None if self.order == "seen" else self.order,
        }


def _is_reason_code(value: str) -> bool:
    return len(value) <= REASON_MAX and value.isascii() and value.replace("_", "").isalnum()
