"""The company picker: find a ConnectWise company of the newest run by name, identifier or id.

Server-side search (`data.search_companies`), shown two ways, both server-rendered:

- without any script: the picker is a GET form (``pick`` = the organization, or ``bulk``; ``q`` =
  the search) back to the page it is on, which renders the matches under it, each a button that
  submits that organization's (or the bulk) mapping form with ``company_id`` = that company;
- with the type-ahead (``static/picker.js``): the same matches, fetched as an HTML fragment from
  ``/mapping/companies`` while the person types, and put in the same place.

The script is a file this app serves (``/mapping/picker.js``), loaded by a ``<script src>`` that
carries the page's nonce: the pages' CSP (``script-src 'nonce-…'``) runs it and still runs no
inline or foreign script. The only change to the CSP is on the pages that use it (quarantine,
mapping): ``connect-src 'self'``, so the script may fetch the fragment from this origin.
"""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from fastapi.responses import HTMLResponse

from billing_sync import reconcile
from billing_sync.review.inputs import bad_request, is_id, parse_search
from billing_sync.review.queries.staging import Company

SCRIPT = Path(__file__).with_name("static") / "picker.js"
# The form a match submits: one organization's (quarantine: map-<id>, mapping page: pick-<id>), the
# bulk form (bulk-map), or the overrides page's add form (add-override: the match picks the company).
FORM_ID = re.compile(r"(map|pick)-\d{1,19}|bulk-map|add-override")
BULK = "bulk"
PICKED = re.compile(r"#\s*(\d{1,19})\s*$")  # "Name #id": what a match fills in (data-fill)


@dataclass(frozen=True)
class Pick:
    """The picker a GET search was made in: ``target`` is an organization id, ``bulk``, or None."""

    target: int | str | None = None
    query: str = ""

    @classmethod
    def parse(cls, q: Mapping[str, str]) -> Self:
        raw = q.get("pick") or ""
        query = parse_search(q.get("q"))
        if not raw:
            return cls(None, query)
        if raw == BULK:
            return cls(BULK, query)
        if not is_id(raw):
            raise bad_request("pick must be an organization id or bulk")
        return cls(int(raw), query)

    def at(self, target: int | str) -> bool:
        return self.target == target


def check_form(value: str | None) -> str | None:
    """The form id the fragment's buttons submit; None renders the matches without buttons."""
    if not value:
        return None
    if not FORM_ID.fullmatch(value):
        raise bad_request(
            "form must be map-<organization id>, pick-<organization id>, bulk-map or add-override"
        )
    return value


def allow_fetch(response: HTMLResponse) -> HTMLResponse:
    """Let this page's own (nonce'd) script fetch from this origin: the type-ahead's requests."""
    csp = response.headers.get("content-security-policy", "")
    if csp and "connect-src" not in csp:
        response.headers["content-security-policy"] = csp.replace(
            "default-src 'none';", "default-src 'none'; connect-src 'self';", 1
        )
    return response


def script() -> str:
    return SCRIPT.read_text(encoding="utf-8")


def resolve(typed: str, companies: Sequence[Company] | None) -> tuple[int | None, str | None]:
    """A company as a person typed it (overrides form, mapping page): (its id, None) for a name,
    "Name #id" or id naming exactly one company of the newest run (names folded as the matching
    rules fold them); (None, why not) otherwise; (None, None) when no run has read companies."""
    if companies is None:
        return None, None
    if not typed:
        return None, "Type the company's name and pick it from the matches."
    ids = {c["id"] for c in companies}
    found = PICKED.search(typed)
    wanted = found.group(1) if found else typed
    if is_id(wanted):
        if int(wanted) in ids:
            return int(wanted), None
    else:
        key = reconcile.normalize_name(typed)
        same = [c["id"] for c in companies if key and reconcile.normalize_name(c["name"]) == key]
        if len(same) == 1:
            return same[0], None
        if same:
            return None, f"Several companies are named “{typed}”: pick one of the matches."
    return None, f"No ConnectWise company of the newest run is “{typed}”: pick one of the matches."
