"""The test oracle: what ConnectWise must hold after a run, computed from a scenario file alone by
a deliberately plain re-statement of the contract's rules (loops over dicts, no pandas, nothing of
billing_sync), so a bug in the product's reconciliation cannot hide behind the same bug in a test.
"""

from __future__ import annotations

import unicodedata
from datetime import date, datetime, timedelta

PRODUCTS = {"edr": "HUNTRESS-EDR", "itdr": "HUNTRESS-ITDR", "sat": "HUNTRESS-SAT", "siem": "HUNTRESS-SIEM"}
BILLING_DATE = "2026-11-01"


def _norm(s: str | None) -> str | None:
    if not isinstance(s, str):
        return None
    folded = "".join(c for c in unicodedata.normalize("NFKC", s).casefold() if c.isalnum() or c.isspace())
    return " ".join(folded.split()) or None


def _when(s: str | None) -> date | None:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).date() if s else None


def _count(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10_000_000 else None


class AmbiguousInvoice(Exception):
    """Two standing invoices for the billing date: the run must fail naming them (docs/contract.md §2)."""


def invoice_of(invoices: list[dict], billing: date) -> dict:
    """The standing usage invoice created on the date, else the newest of the 3 days before."""
    standing = [
        i
        for i in invoices
        if i["status"] not in ("voided", "full_refund", "draft") and i.get("has_usage", bool(i["lines"]))
    ]
    chosen = [i for i in standing if _when(i["created_at"]) == billing]
    if not chosen:
        earlier = [i for i in standing if billing - timedelta(days=3) <= _when(i["created_at"]) < billing]
        newest = max((_when(i["created_at"]) for i in earlier), default=None)
        chosen = [i for i in earlier if _when(i["created_at"]) == newest]
    if len(chosen) > 1:
        raise AmbiguousInvoice(sorted(i["id"] for i in chosen))
    if not chosen:
        raise LookupError(f"no invoice for {billing}")
    return chosen[0]


def expected_state(scenario: dict, billing: date) -> tuple[dict[int, float], set[str]]:
    """(addition id → quantity after the sync, the reason codes that must be quarantined)."""
    h, cw = scenario["huntress"], scenario["connectwise"]
    invoice = invoice_of(h["invoices"], billing)
    companies = [c for c in cw["companies"] if not c.get("deletedFlag")]
    # The own account's organizations, and those of each managed account the invoice names.
    account_of = {o["id"]: h["account"]["id"] for o in h["organizations"]}
    managed = {
        o["id"]: (a["id"], o) for a in h.get("managed_accounts", []) for o in a.get("organizations", [])
    }
    named = {
        managed[line["organization_id"]][0] for line in invoice["lines"] if line["organization_id"] in managed
    }
    orgs = {o["id"]: o for o in h["organizations"]}
    for org_id, (account, org) in managed.items():
        if account in named:
            orgs[org_id], account_of[org_id] = org, account
    # Keys are unique within an account only: one carried in two accounts is no key match.
    accounts_of_key: dict[str, set[int]] = {}
    for org_id, org in orgs.items():
        if org.get("key"):
            accounts_of_key.setdefault(org["key"].lower(), set()).add(account_of[org_id])
    catalog = {p["id"]: p["identifier"] for p in cw["catalog"]}
    reasons: set[str] = set()

    def company_of(org_id: int) -> tuple[int | None, str | None]:
        """(company id, None) or (None, the reason it has none)."""
        org = orgs.get(org_id, {})
        key = (org.get("key") or "").lower()
        key = key if len(accounts_of_key.get(key, ())) <= 1 else ""
        by_key = [c["id"] for c in companies if key and (c.get("identifier") or "").lower() == key]
        name = _norm(org.get("name"))
        by_name = [c["id"] for c in companies if name and _norm(c["name"]) == name]
        for found in (by_key, by_name):
            if len(found) == 1:
                return found[0], None
            if len(found) > 1:
                return None, "ambiguous_company_match"
        return None, "unmapped_organization"

    lines_per_org: dict[int, int] = {}
    for line in invoice["lines"]:
        lines_per_org[line["organization_id"]] = lines_per_org.get(line["organization_id"], 0) + 1
    # Per (company, product): the sum of the counts, whether one is bad, whether one is absent or null.
    usage: dict[tuple[int, str], dict] = {}
    for line in invoice["lines"]:
        company, why = company_of(line["organization_id"])
        counts = line.get("actual_usage")
        for product in PRODUCTS:
            absent = counts is None or (isinstance(counts, dict) and counts.get(product) is None)
            value = _count(counts.get(product)) if isinstance(counts, dict) else None
            bad = (value is None and not absent) or lines_per_org[line["organization_id"]] > 1
            if company is None:
                if bad or (value or 0) != 0:  # absent or null: 0, as there is no addition
                    reasons.add(why)
                continue
            entry = usage.setdefault((company, product), {"sum": 0, "bad": False, "absent": False})
            entry["bad"] |= bad
            entry["absent"] |= absent
            entry["sum"] += value or 0

    live: dict[tuple[int, str], list[dict]] = {}
    quantities: dict[int, float] = {}
    for ag in cw["agreements"]:
        for add in ag.get("additions", []):
            quantities[add["id"]] = (
                float(add["quantity"]) if _count(add["quantity"]) is not None else add["quantity"]
            )
        if ag.get("cancelledFlag") or ag.get("agreementStatus", "Active") != "Active":
            continue
        ended = _when(ag.get("endDate"))
        if ended and ended < billing:
            continue
        for add in ag.get("additions", []):
            cancelled = _when(add.get("cancelledDate"))
            # No effectiveDate: it bills from its agreement's start; neither date: it has started.
            effective = _when(add.get("effectiveDate") or ag.get("startDate"))
            if (cancelled and cancelled <= billing) or (effective and effective > billing):
                continue
            # The addition's own status (served as its agreementStatus; the scenario may say either).
            if (
                add.get("additionStatus", "Active") != "Active"
                or add.get("agreementStatus", "Active") != "Active"
            ):
                continue
            ident = catalog.get(add["product_id"])
            product = next((p for p, i in PRODUCTS.items() if i == ident), None)
            if product:
                live.setdefault((ag["company_id"], product), []).append(add)

    expected = dict(quantities)
    on_invoice = {company for company, _ in usage}
    if any(company not in on_invoice for company, _ in live):
        reasons.add("missing_from_invoice")
    for key, entry in usage.items():
        adds = live.get(key, [])
        qty = entry["sum"]
        if entry["bad"] or (entry["absent"] and adds):  # absence never lowers a quantity
            reasons.add("invalid_usage")
        elif len(adds) > 1:
            reasons.add("duplicate_addition")
        elif not adds:
            if qty > 0:
                reasons.add("no_live_addition")
        else:
            old = float(adds[0]["quantity"])
            delta = abs(qty - old)
            if (delta > 10 and delta > 0.5 * old) or (qty == 0 and old > 0):
                reasons.add("change_exceeds_limit")
            else:
                expected[adds[0]["id"]] = float(qty)
    return expected, reasons
