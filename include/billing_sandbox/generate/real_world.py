"""What real services hand a reseller that a tidy scenario lacks (`generate(..., real_world=True)`).

The generator's scenarios are built problem by problem; this pass then reshapes one the way the
real APIs are known to differ from a first reading (project issue "True to the real APIs"):

- managed accounts: a reseller's organizations live in several Huntress accounts, read from
  `/v1/accounts/{id}/organizations`, and a key is unique only within its account (Huntress
  reference, "Resellers and their managed accounts"); one key is planted in two accounts;
- additions without `effectiveDate` (optional in ConnectWise: pyconnectwise's `Addition` model),
  which bill from their agreement's start;
- agreements still `Active` whose `endDate` is before the billing date (not live);
- a newer `voided` usage invoice on the billing date, with other counts (voided never bills);
- invoice lines whose `actual_usage` lacks a product or holds null for it (the spec promises the
  keys for no organization).

Every change is listed in `meta.real_world`, so a test can say which rows each one touched.
"""

from __future__ import annotations

import copy
import random
from datetime import date
from typing import Any

MANAGED_ACCOUNTS = (
    {"id": 2, "name": "Harbor Dental Group", "subdomain": "harbordental"},
    {"id": 3, "name": "Pioneer Logistics", "subdomain": "pioneerlogistics"},
)
# Of the organizations, of the live Huntress additions, of the newest invoice's lines.
MANAGED_SHARE = 0.35
NO_EFFECTIVE_DATE_SHARE = 0.15
ENDED_AGREEMENTS = 2
ABSENT_SHARE, NULL_SHARE = 0.12, 0.05
VOIDED_BUMP = 7  # the voided invoice bills more EDR per line: choosing it would show


def apply(scenario: dict[str, Any], seed: int) -> dict[str, Any]:
    """A copy of `scenario` with the real-world shapes above (same seed, same result)."""
    out = copy.deepcopy(scenario)
    rng = random.Random(f"real-world:{seed}")
    h, cw = out["huntress"], out["connectwise"]
    billing = date.fromisoformat(out["meta"]["billing_date"])
    newest = max(
        (i for i in h["invoices"] if i["created_at"][:10] == billing.isoformat()),
        key=lambda i: i["created_at"],
    )
    notes: dict[str, Any] = {}
    notes["managed_organizations"], notes["shared_key"] = _managed_accounts(h, rng)
    notes["no_effective_date"] = _drop_effective_dates(cw, billing, rng)
    notes["ended_agreements"] = _end_agreements(cw, billing, rng)
    notes["absent"], notes["null"] = _absent_products(newest, rng)
    notes["voided_invoice"] = _voided_twin(h, newest)
    out["meta"]["real_world"] = notes
    return out


def _managed_accounts(h: dict[str, Any], rng: random.Random) -> tuple[dict[str, list[int]], list[int]]:
    orgs = sorted(h["organizations"], key=lambda o: o["id"])
    moved = {a["id"]: [] for a in MANAGED_ACCOUNTS}
    accounts = [{**a, "organizations": []} for a in MANAGED_ACCOUNTS]
    keep = []
    for org in orgs:
        if rng.random() < MANAGED_SHARE:
            account = accounts[len(keep) % len(accounts)]
            account["organizations"].append(org)
            moved[account["id"]].append(org["id"])
        else:
            keep.append(org)
    h["organizations"], h["managed_accounts"] = keep, accounts
    # One key in two accounts: legal in Huntress, so neither is a key match.
    shared: list[int] = []
    donor = next((o for o in keep if o.get("key")), None)
    taker = next((o for a in accounts for o in a["organizations"] if o.get("key")), None)
    if donor and taker:
        taker["key"] = donor["key"]
        shared = [donor["id"], taker["id"]]
    return {str(k): v for k, v in moved.items()}, shared


def _huntress_live(cw: dict[str, Any], billing: date) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(agreement, addition) pairs of Huntress products that are live on the billing date."""
    huntress_ids = {p["id"] for p in cw["catalog"] if p["identifier"].startswith("HUNTRESS-")}
    day = billing.isoformat()
    pairs = []
    for ag in cw["agreements"]:
        if (
            ag.get("agreementStatus") != "Active"
            or ag.get("cancelledFlag")
            or (ag.get("endDate") or "9")[:10] < day
        ):
            continue
        for ad in ag["additions"]:
            status = ad.get("additionStatus", ad.get("agreementStatus"))
            if (
                ad["product_id"] in huntress_ids
                and status in (None, "Active")
                and (ad.get("effectiveDate") or "")[:10] <= day
                and (not ad.get("cancelledDate") or ad["cancelledDate"][:10] > day)
            ):
                pairs.append((ag, ad))
    return pairs


def _drop_effective_dates(cw: dict[str, Any], billing: date, rng: random.Random) -> list[int]:
    chosen = []
    for ag, ad in _huntress_live(cw, billing):
        if ag["startDate"][:10] <= billing.isoformat() and rng.random() < NO_EFFECTIVE_DATE_SHARE:
            ad["effectiveDate"] = None
            chosen.append(ad["id"])
    return chosen


def _end_agreements(cw: dict[str, Any], billing: date, rng: random.Random) -> list[int]:
    candidates = sorted(
        {ag["id"]: ag for ag, _ in _huntress_live(cw, billing)}.values(), key=lambda a: a["id"]
    )
    ended = rng.sample(candidates, min(ENDED_AGREEMENTS, len(candidates)))
    for ag in ended:
        # Still "Active": ConnectWise leaves the status until someone closes the agreement.
        ag["endDate"] = f"{date.fromordinal(billing.toordinal() - 10).isoformat()}T00:00:00Z"
        ag["noEndingDateFlag"] = False
    return sorted(ag["id"] for ag in ended)


def _absent_products(invoice: dict[str, Any], rng: random.Random) -> tuple[list[list[Any]], list[list[Any]]]:
    absent, null = [], []
    for line in invoice["lines"]:
        usage = line["actual_usage"]
        products = sorted(p for p, v in usage.items() if isinstance(v, int) and not isinstance(v, bool))
        if not products:
            continue
        draw = rng.random()
        if draw < ABSENT_SHARE:
            product = rng.choice(products)
            del usage[product]
            absent.append([line["organization_id"], product])
        elif draw < ABSENT_SHARE + NULL_SHARE:
            product = rng.choice(products)
            usage[product] = None
            null.append([line["organization_id"], product])
    invoice["quantity"] = sum(_count(line["actual_usage"].get("edr")) for line in invoice["lines"])
    return absent, null


def _voided_twin(h: dict[str, Any], invoice: dict[str, Any]) -> int:
    """A later invoice of the same billing date, voided, with higher counts."""
    twin = copy.deepcopy(invoice)
    twin["id"] = max(i["id"] for i in h["invoices"]) + 1
    twin["status"] = "voided"
    twin["created_at"] = invoice["created_at"][:11] + "09:00:00Z"
    twin["updated_at"] = invoice["created_at"][:11] + "09:30:00Z"
    next_line = max((line["id"] for i in h["invoices"] for line in i["lines"] if "id" in line), default=0)
    for line in twin["lines"]:
        next_line += 1
        line["id"] = next_line
        if isinstance(line["actual_usage"].get("edr"), int):
            line["actual_usage"]["edr"] += VOIDED_BUMP
    twin["quantity"] = sum(_count(line["actual_usage"].get("edr")) for line in twin["lines"])
    twin["receipt"] = invoice.get("receipt", "").replace(f"{invoice['id']:08d}", f"{twin['id']:08d}")
    h["invoices"].append(twin)
    return twin["id"]


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**7 else 0
