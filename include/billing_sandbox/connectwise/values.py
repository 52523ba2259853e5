"""Constants of the ConnectWise sandbox and the small helpers that shape values as ConnectWise prints them."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from billing_sandbox.conditions import (
    canonical_datetime,
)

DEFAULT_CODEBASE = "v4_6_release/"
VERSION_CODE = "v2026.11"
VERSION_NUMBER = "v4.6.2026110"
API_MEMBER = "APIMember"  # who ConnectWise records as entering/updating what the API wrote
SEED_MEMBER = "admin1"  # who "entered" the scenario's records
DEFAULT_DATE = "2025-01-01T00:00:00Z"
PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX = 25, 1000
INT32_MAX = 2_147_483_647
JSON_TYPE = "application/json; charset=utf-8"
ADDITIONS_ROUTE = "/finance/agreements/{id}/additions"

# Records hold hrefs as BASE + path. The base (scheme, host, port, codebase) is only known per
# request, so serialized JSON gets one str.replace of the escaped placeholder per response.
BASE = "\x00cw-base\x00"
_BASE_JSON = json.dumps(BASE)[1:-1]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Small value helpers


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=4096)
def _canonical_or_raw(value: str) -> str:
    try:
        return canonical_datetime(value)
    except ValueError:
        return value


def _date_or_raw(value: Any) -> Any:
    """Scenario dates in the API's canonical form; text that is no date is served as given."""
    return _canonical_or_raw(value) if isinstance(value, str) else value


def _num(value: float | int) -> float | int:
    """Integral numbers as JSON integers (38, not 38.0), as ConnectWise prints decimals."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _money(value: float) -> float | int:
    return _num(round(value + 0.0, 2))


def _prune(record: dict[str, Any]) -> dict[str, Any]:
    # ConnectWise leaves null properties out of its JSON rather than sending null.
    return {k: v for k, v in record.items() if v is not None}


def _href(path: str) -> str:
    return BASE + path


def _info(entered: str, member: str = SEED_MEMBER, **links: str) -> dict[str, Any]:
    """A record's `_info`: who entered and last updated it and when (the same here), then its links."""
    return {"lastUpdated": entered, "updatedBy": member, "dateEntered": entered, "enteredBy": member, **links}


class Names:
    """Stable ids for named lookups (statuses, types): known names first, others in order seen."""

    def __init__(self, known: Iterable[str]) -> None:
        self.ids: dict[str, int] = {}
        self.names: dict[int, str] = {}  # id → the name as first given (what a list of them shows)
        for name in known:
            self.id(name)

    def id(self, name: str) -> int:
        key = name.casefold()
        if key not in self.ids:
            self.ids[key] = len(self.ids) + 1
            self.names[self.ids[key]] = name
        return self.ids[key]


def _named(value: Any, names: Names, default: str, href_key: str, path: str) -> dict[str, Any]:
    """A scenario's `"Active"` or `{"name": "Active"}` (or with an id) → `{id, name, _info}`."""
    if isinstance(value, Mapping):
        name = str(value.get("name") or default)
        ident = value["id"] if isinstance(value.get("id"), int) else names.id(name)
    else:
        name = str(value) if value else default
        ident = names.id(name)
    return {"id": ident, "name": name, "_info": {href_key: _href(f"{path}/{ident}")}}
