"""The scenario generator: deterministic, realistic, and every planted problem really is one.

The planted problems are checked against the data with a small matcher written here from
docs/contract.md §2-§3 and the ConnectWise reference, independent of both the generator and the sync.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DEMO = ROOT / "scenarios" / "demo.json"
SCHEMA = ROOT / "include" / "billing_sandbox" / "scenario.schema.json"
PRODUCTS = {"edr": "HUNTRESS-EDR", "itdr": "HUNTRESS-ITDR", "sat": "HUNTRESS-SAT", "siem": "HUNTRESS-SIEM"}
CHECKED_CODES = {
    "unmapped_organization", "ambiguous_company_match", "no_live_addition", "duplicate_addition",
    "invalid_usage", "change_exceeds_limit", "missing_from_invoice",
}  # fmt: skip


# --------------------------------------------------------------------------------------------
# An independent reference matcher


def _fold_with(sep: str) -> Callable[[str], str]:
    """Case, spacing and punctuation folded; punctuation either dropped or turned into a space."""

    def fold(name: str) -> str:
        text = unicodedata.normalize("NFKC", name).casefold()
        text = "".join(sep if unicodedata.category(ch)[0] in "PS" else ch for ch in text)
        return " ".join(text.split())

    return fold


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value <= 10_000_000 else None


def _day(ts: str | None) -> date | None:
    return date.fromisoformat(ts[:10]) if ts else None


def _live(addition: dict, agreement: dict, billing: date) -> bool:
    cancelled, effective = _day(addition.get("cancelledDate")), _day(addition.get("effectiveDate"))
    return (
        agreement["cancelledFlag"] is False
        and agreement["agreementStatus"] == "Active"
        and addition.get("additionStatus", "Active") == "Active"
        and (cancelled is None or cancelled > billing)
        and effective is not None
        and effective <= billing
    )


def match(scenario: dict, fold: Callable[[str], str]) -> dict[int, tuple[str, Any]]:
    """organization id → ("key"|"name", company id) or ("ambiguous"|"unmapped", candidates)."""
    companies = [c for c in scenario["connectwise"]["companies"] if not c.get("deletedFlag")]
    by_key, by_name = defaultdict(list), defaultdict(list)
    for c in companies:
        by_key[c["identifier"].casefold()].append(c["id"])
        by_name[fold(c["name"])].append(c["id"])
    out = {}
    for org in scenario["huntress"]["organizations"]:
        for rule, found in (("key", by_key[org["key"].casefold()]), ("name", by_name[fold(org["name"])])):
            if len(found) == 1:
                out[org["id"]] = (rule, found[0])
                break
            if len(found) > 1:
                out[org["id"]] = ("ambiguous", sorted(found))
                break
        else:
            out[org["id"]] = ("unmapped", [])
    return out


DROP_PUNCTUATION = _fold_with("")


def reconcile(scenario: dict, fold: Callable[[str], str] = DROP_PUNCTUATION) -> dict[str, Any]:
    """Outcome of every sync key of the newest invoice, per docs/contract.md §2-§3."""
    billing = date.fromisoformat(scenario["meta"]["billing_date"])
    invoice = max(scenario["huntress"]["invoices"], key=lambda i: i["created_at"])
    matches = match(scenario, fold)
    catalog = {c["id"]: c["identifier"] for c in scenario["connectwise"]["catalog"]}
    live: dict[tuple[int, str], list[dict]] = defaultdict(list)
    for ag in scenario["connectwise"]["agreements"]:
        for a in ag["additions"]:
            if _live(a, ag, billing):
                live[(ag["company_id"], catalog[a["product_id"]])].append(a)
    outcomes: dict[tuple, str] = {}
    usage: dict[tuple[int, str], list[Any]] = defaultdict(list)
    orgs_of: dict[int, list[int]] = defaultdict(list)
    for line in invoice["lines"]:
        rule, target = matches[line["organization_id"]]
        if rule in ("ambiguous", "unmapped"):
            code = "ambiguous_company_match" if rule == "ambiguous" else "unmapped_organization"
            outcomes[("organization", line["organization_id"])] = code
            continue
        orgs_of[target].append(line["organization_id"])
        for p in PRODUCTS:
            usage[(target, p)].append(line["actual_usage"][p] if p in line["actual_usage"] else "<missing>")
    for (company, p), values in usage.items():
        outcomes[(company, p)] = _decide(values, live.get((company, PRODUCTS[p]), []))
    for company, identifier in live:
        p = next((p for p, i in PRODUCTS.items() if i == identifier), None)
        if p and company not in orgs_of:
            outcomes[(company, p)] = "missing_from_invoice"
    return {"outcomes": outcomes, "matches": matches, "orgs_of": orgs_of}


def _decide(values: list[Any], live: list[dict]) -> str:
    counts = [_count(v) for v in values]
    if any(c is None for c in counts):
        return "invalid_usage"
    total = sum(counts)  # type: ignore[arg-type]
    if len(live) > 1:
        return "duplicate_addition"
    if not live:
        return "no_live_addition" if total > 0 else "not_applicable"
    old = live[0]["quantity"]
    if old == total:
        return "unchanged"
    d = abs(total - old)
    if (d > 10 and d > 0.5 * old) or (old > 0 and total == 0):
        return "change_exceeds_limit"
    return "changed"


def planted_keys(scenario: dict) -> set[tuple]:
    out = set()
    for code, entries in scenario["meta"]["planted"].items():
        for e in entries:
            if code in ("unmapped_organization", "ambiguous_company_match"):
                out.add((code, "organization", e["organization_id"]))
            else:
                out.add((code, e["company_id"], e["product"]))
    return out


def problem_keys(result: dict) -> set[tuple]:
    return {(code, *key) for key, code in result["outcomes"].items() if code in CHECKED_CODES}
