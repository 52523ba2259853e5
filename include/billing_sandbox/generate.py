"""Seeded, realistic sandbox scenarios: `python -m billing_sandbox generate --organizations N --seed S`.

`generate()` is pure: the same organizations, seed and options give the same scenario, byte for byte
once written with `dumps()`. The data looks like an MSP's books: Huntress organizations with a few
products each, ConnectWise companies with several agreements (managed services, security bundles,
block time, projects, cancelled and expired ones) carrying Huntress and non-Huntress additions.

On top of that clean base it plants a documented share of every problem the sync must quarantine
(CONTRACTS §3, all but `changed_since_read` and `push_rejected`, which need a live server) and a few
traps that must *not* become problems. `meta.planted` lists every planted key; docs/scenarios.md
explains each variant and the shares.
"""

from __future__ import annotations

import argparse
import calendar
import itertools
import json
import math
import random
import re
import sys
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from . import real_world

GENERATOR_VERSION = "1"
PRODUCTS = ("edr", "itdr", "sat", "siem")
HUNTRESS_ITEMS = {
    "edr": "HUNTRESS-EDR",
    "itdr": "HUNTRESS-ITDR",
    "sat": "HUNTRESS-SAT",
    "siem": "HUNTRESS-SIEM",
}

DEFAULTS: dict[str, Any] = {
    "billing_date": "2026-11-01",
    "months": 3,
    "change_share": 0.25,
    "agreements_per_company": 2.4,
    "rate_limit": 60,
    "clean": False,
    "real_world": False,
}

# (id, identifier, description, unit price, unit cost); all recurring per-unit items but the block.
CATALOG: list[tuple[int, str, str, float, float]] = [
    (752, "HUNTRESS-EDR", "Huntress Managed EDR", 6.5, 3.0),
    (753, "HUNTRESS-ITDR", "Huntress Managed ITDR", 4.0, 2.0),
    (754, "HUNTRESS-SAT", "Huntress Managed Security Awareness Training", 2.5, 1.0),
    (755, "HUNTRESS-SIEM", "Huntress Managed SIEM (per log source)", 12.0, 6.0),
    (801, "M365-E3", "Microsoft 365 E3 (NCE, monthly)", 39.0, 33.6),
    (802, "M365-BP", "Microsoft 365 Business Premium (NCE, monthly)", 25.0, 22.0),
    (810, "BACKUP-SERVER", "Cloud backup - server", 95.0, 40.0),
    (811, "BACKUP-WKS", "Cloud backup - workstation", 8.0, 3.5),
    (820, "RMM-AGENT", "RMM & patching - per device", 3.0, 1.2),
    (830, "MS-HELPDESK", "Managed helpdesk - per user", 45.0, 0.0),
    (840, "FIREWALL-MGMT", "Managed firewall", 120.0, 35.0),
    (850, "BLOCK-10HR", "Prepaid block - 10 hours", 1250.0, 0.0),
    (860, "DOMAIN-REG", "Domain registration & DNS", 2.0, 1.1),
]
_CATALOG_ROW = {row[1]: row for row in CATALOG}

# reason code → (planted cases per organization, variants in the order they are planted).
# Each code is planted at least once per variant, then scales with N; see docs/scenarios.md.
PROBLEMS: dict[str, tuple[float, tuple[str, ...]]] = {
    "unmapped_organization": (0.01, ("not_in_connectwise", "name_mismatch", "deleted_company_only")),
    "ambiguous_company_match": (0.004, ("duplicate_companies",)),
    "no_live_addition": (
        0.02,
        ("cancelled_agreement", "cancelled_addition", "future_effective", "expired_agreement", "no_addition"),
    ),
    "duplicate_addition": (0.008, ("same_agreement", "two_agreements")),
    "invalid_usage": (0.01, ("negative", "string", "fractional", "null", "missing", "huge")),
    "change_exceeds_limit": (0.01, ("jump_up", "big_drop", "drop_to_zero", "from_zero")),
    "missing_from_invoice": (0.008, ("churned_organization", "no_organization")),
}
# Never more than this share of the organizations hosts a planted problem (small N).
MAX_PROBLEM_SHARE = 0.6
# Clean structure and traps (per organization, minimum).
SHARES: dict[str, tuple[float, int]] = {
    "name_matched": (0.12, 2),  # of clean single organizations
    "multi_organization_companies": (0.04, 1),
    "new_organizations": (0.04, 0),  # on the newest invoice only
    "prospect_companies": (0.12, 3),  # companies without Huntress
    "deleted_twin_companies": (0.004, 1),
    "key_beats_name": (0.004, 1),
    "price_changes": (0.01, 1),
}
# Guard used to keep clean changes clean and planted ones over the limit (CONTRACTS §1 defaults).
MAX_CHANGE_UNITS = 10
MAX_CHANGE_RATIO = 0.5

# ---------------------------------------------------------------------------------------------
# Names

PLACES = [
    "Acme", "Summit", "Riverside", "Lakeside", "Blue Harbor", "Northwind", "Pinecrest", "Maple Leaf",
    "Ironwood", "Silver Creek", "Redstone", "Oakridge", "Cedar Point", "Granite Peak", "Harborview",
    "Evergreen", "Sunrise", "Westfield", "Eastgate", "Brightwater", "Copperfield", "Foxglove", "Hawthorne",
    "Juniper", "Kingsley", "Larkspur", "Meadowbrook", "Northstar", "Orchard Hill", "Prairie", "Quarry Lane",
    "Ravenwood", "Sagebrush", "Tidewater", "Union Square", "Valley View", "Willow Bend", "Yellow Pine",
    "Zenith", "Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon Ridge", "Horizon", "Keystone",
    "Liberty", "Monarch", "Nova", "Pioneer", "Sterling", "Titan", "Vanguard", "Apex", "Bayshore",
    "Clearwater", "Driftwood", "Fairhaven", "Glenwood", "Highland", "Ivy Lane", "Jasper", "Kestrel",
    "Lighthouse", "Mission", "Northgate", "Old Mill", "Parkside", "Red Oak", "Stonebridge", "Three Rivers",
    "Upland", "Vista", "Windmill", "Zürich", "São Paulo", "Montréal", "Malmö", "Kraków", "Córdoba",
    "Reykjavík", "Tromsø", "Düsseldorf",
]  # fmt: skip
SURNAMES = [
    "Anderson", "Baker", "Chen", "Delgado", "Fitzgerald", "García", "Hoffmann", "Ivanova", "Johansson",
    "Kowalski", "Nakamura", "O'Connor", "Patel", "Rossi", "Schröder", "Nguyen", "Øvergaard", "Dubois",
    "Novák", "Müller", "Peña", "Ólafsson", "Murphy", "Okafor", "Singh", "Kim", "Haddad", "Larsen",
    "Moreau", "Brennan", "D'Angelo", "MacLeod", "Whitaker", "Yamamoto", "Zhang", "Abernathy", "Castillo",
    "Eriksen", "Fontaine", "Gallagher", "Lindqvist", "Łukasik",
]  # fmt: skip
INDUSTRIES = [
    "Dental", "Legal", "Logistics", "Plumbing", "Accounting", "Veterinary Clinic", "Family Medicine",
    "Auto Repair", "Construction", "Engineering", "Realty", "Insurance", "Manufacturing", "Architects",
    "Brewing", "Bakery", "Pharmacy", "Credit Union", "Property Management", "Landscaping", "Electric",
    "HVAC", "Consulting", "Marketing", "Orthodontics", "Chiropractic", "Wealth Advisors", "Foods",
    "Printing", "Freight", "Machining", "Labs", "Studios", "Outfitters", "Pediatrics", "Physical Therapy",
    "Staffing", "Transport", "Roofing", "Solar", "Imaging", "Dermatology", "Optometry", "Animal Hospital",
    "Academy", "Hotel", "Winery", "Title & Escrow", "Surveying", "Tax Services",
]  # fmt: skip
PARTNER_TRADES = ["Law", "CPAs", "Architects", "Engineering", "Dental", "Advisors", "Insurance", "Realty"]
SHOPS = ["Auto Body", "Pub", "Hardware", "Bakery", "Garden Center", "Florist", "Deli", "Pharmacy"]
SUFFIXES = [
    "", "", "", "", "", " Inc.", ", Inc.", " LLC", " Ltd", " Group", " & Co.", " Partners", " PC", " LLP",
    " PLLC", " GmbH", " Pty Ltd", " S.A.", " AG", " Corp.",
]  # fmt: skip
PARTNER_SUFFIXES = ["", "", " LLP", " PC", " PLLC"]
# What a company is called in ConnectWise vs the organization in Huntress: same customer, names that
# no normalization equates (the `name_mismatch` variant of unmapped_organization).
ABBREVIATIONS = {
    "Veterinary Clinic": "Vet Clinic", "Family Medicine": "Family Med",
    "Property Management": "Property Mgmt",
    "Accounting": "Acctg", "Manufacturing": "Mfg", "Physical Therapy": "PT", "Construction": "Constr",
    "Engineering": "Eng", "Insurance": "Ins", "Orthodontics": "Ortho",
}  # fmt: skip
# Forced into the first clean key-matched companies: quoting, unicode and markup must survive every
# layer (HTML reports, SQL, logs). They match by key, so they stay clean.
SPECIAL_KEY_NAMES = [
    ("<script>alert('pwned')</script> Holdings", "ScriptHoldings"),
    ("O'Reilly & Daughters Bakery", "OReillyDaughters"),
    ("Müller & Søn Präzisionstechnik GmbH", "MuellerSoen"),
    ("Brooks <b>Bold</b> Design & Print", "BrooksBoldDesign"),
    ("Café Lumière", "CafeLumiere"),
    ("東京 Trading K.K.", "TokyoTrading"),
]
# Forced into the first clean name-matched companies (the organization's name is a case variant).
SPECIAL_NAME_NAMES = ["Zürich Zahnärzte AG", "Peña & Ólafsson Law"]

IDENTIFIER_MAX = 25  # ConnectWise company identifier length limit


def fold(name: str) -> str:
    """The coarsest sensible name folding: accents, case, spacing and punctuation all gone.

    Names distinct under it are distinct under any normalization the sync may use, so the
    generator keeps every company and organization name unique under it unless a collision is planted.
    """
    decomposed = unicodedata.normalize("NFKD", name).casefold()
    return "".join(ch for ch in decomposed if ch.isalnum())


def _ascii_words(name: str) -> list[str]:
    text = re.sub(r"<[^>]*>", " ", name).replace("'", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.findall(r"[A-Za-z0-9]+", text)


def _camel(name: str) -> str:
    return "".join(w[:1].upper() + w[1:] for w in _ascii_words(name))[:IDENTIFIER_MAX] or "Company"


def _slug(name: str) -> str:
    return "-".join(w.lower() for w in _ascii_words(name)) or "org"


def _variant(name: str, rng: random.Random) -> str:
    """The same name as someone else typed it: case, doubled spaces, a trailing dot, a dropped comma."""
    for _ in range(8):
        kind = rng.randrange(5)
        if kind == 0:
            out = name.upper()
        elif kind == 1:
            out = name.lower()
        elif kind == 2 and " " in name:
            words = name.split(" ")
            at = rng.randrange(1, len(words))
            out = " ".join(words[:at]) + "  " + " ".join(words[at:])
        elif kind == 3:
            out = name[:-1] if name.endswith(".") else name + "."
        else:
            out = name.replace(", ", " ")
        if out != name:
            return out
    return name.upper() + "."


# ---------------------------------------------------------------------------------------------
# Dates


def _months_back(d: date, k: int) -> date:
    year, month0 = divmod(d.year * 12 + d.month - 1 - k, 12)
    month = month0 + 1
    return date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _ts(d: date, hour: int = 0, minute: int = 0) -> str:
    return f"{d.isoformat()}T{hour:02d}:{minute:02d}:00Z"


# ---------------------------------------------------------------------------------------------
# Model


@dataclass
class _Org:
    name: str
    key: str
    usage: dict[str, int]  # true usage at the newest billing date
    line: dict[str, Any] | None  # actual_usage on the newest invoice; None = not on it
    previous: dict[str, int]  # usage on the invoice before (what ConnectWise was last synced to)
    first_month: int = 0  # index of the first invoice carrying the organization (0 = oldest)
    id: int = 0
    created_at: str = ""


@dataclass
class _Case:
    kind: str
    variants: tuple[str, ...] = ()
    size: int = 1  # organizations it consumes


@dataclass
class _Slot:
    """One planned addition of a Huntress product on a company."""

    qty: int
    on: str = "primary"  # primary | second | cancelled | expired
    state: str = "live"  # live | cancelled (in the past) | future (effective later) | ending (cancels later)


@dataclass
class _Company:
    record: dict[str, Any]
    agreements: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.record["id"]


class _Builder:
    def __init__(self, organizations: int, seed: int, opts: dict[str, Any]) -> None:
        self.n = organizations
        self.seed = seed
        self.opts = opts
        self.rng = random.Random(seed)
        # A stream of its own, so --change-share moves quantities only: the same seed keeps the same
        # customers, and the keys changed at a lower share are a subset of those at a higher one.
        self.change_rng = random.Random(f"{seed}/changes")
        newest = date.fromisoformat(opts["billing_date"])
        self.months = opts["months"]
        self.billing_dates = [_months_back(newest, k) for k in range(self.months - 1, -1, -1)]
        self.newest = newest
        self.earliest = self.billing_dates[0]
        self.orgs: list[_Org] = []
        self.companies: list[dict[str, Any]] = []
        self.agreements: list[dict[str, Any]] = []
        self.planted: dict[str, list[dict[str, Any]]] = {code: [] for code in PROBLEMS}
        self.distractors: dict[str, list[dict[str, Any]]] = {
            "deleted_twin_company": [], "key_beats_name": [], "price_change": [],
            "stale_addition_on_closed_agreement": [], "addition_cancelled_in_past": [],
            "zero_quantity_addition": [],
        }  # fmt: skip
        self.keys = {"changed": 0, "unchanged": 0}
        self._bases: dict[str, str] = {}  # generated name → name without legal suffix (for identifiers)
        self.key_matched: list[_Company] = []  # clean companies matched by key (for the key_beats_name trap)
        # Taken already: names (folded, the special ones reserved), identifiers (casefolded), org keys.
        self._folded = {fold(name) for name in [*(n for n, _ in SPECIAL_KEY_NAMES), *SPECIAL_NAME_NAMES]}
        self._identifiers: set[str] = set()
        self._org_keys: set[str] = set()
        self._next_agreement = 1500
        self._next_addition = 20001
        self._org_ids = self._id_pool(100, organizations)
        self._company_ids = self._id_pool(250, organizations * 2 + 50)

    # -- ids and names ---------------------------------------------------------------------------

    def _id_pool(self, start: int, count: int) -> list[int]:
        """Increasing ids with small gaps (deleted records), handed out in shuffled order."""
        ids, current = [], start
        for _ in range(count):
            current += 1 + (self.rng.random() < 0.2) * self.rng.randint(1, 4)
            ids.append(current)
        self.rng.shuffle(ids)
        return ids

    def _fresh_name(self) -> str:
        """A business name whose folded form (suffix included or not) is new."""
        rng = self.rng
        for attempt in range(200):
            pattern = rng.random()
            if pattern < 0.5:
                base, suffix = f"{rng.choice(PLACES)} {rng.choice(INDUSTRIES)}", rng.choice(SUFFIXES)
            elif pattern < 0.75:
                base, suffix = f"{rng.choice(SURNAMES)} {rng.choice(INDUSTRIES)}", rng.choice(SUFFIXES)
            elif pattern < 0.9:
                a, b = rng.sample(SURNAMES, 2)
                base, suffix = f"{a} & {b} {rng.choice(PARTNER_TRADES)}", rng.choice(PARTNER_SUFFIXES)
            else:
                base, suffix = f"{rng.choice(SURNAMES)}'s {rng.choice(SHOPS)}", ""
            if attempt >= 20:
                # The word lists run short past ~15,000 customers: branch offices keep names unique.
                base += f" of {rng.choice(PLACES)}"
            if self._claim_name(base):
                self._folded.add(fold(base + suffix))
                self._bases[base + suffix] = base
                return base + suffix
        raise RuntimeError("name space exhausted")

    def _claim_name(self, base: str) -> bool:
        key = fold(base)
        if key in self._folded:
            return False
        self._folded.add(key)
        return True

    def _identifier(self, name: str, preferred: str | None = None) -> str:
        base = (preferred or _camel(self._bases.get(name, name)))[:IDENTIFIER_MAX]
        candidate, n = base, 1
        while candidate.casefold() in self._identifiers:
            n += 1
            candidate = base[: IDENTIFIER_MAX - len(str(n))] + str(n)
        self._identifiers.add(candidate.casefold())
        return candidate

    def _other_key(self, name: str) -> str:
        """An organization key that cannot equal any identifier: identifiers never contain '-'."""
        base = _slug(name)
        if "-" not in base:
            base += "-org"
        candidate, n = base, 1
        while candidate in self._org_keys:
            n += 1
            candidate = f"{base}-{n}"
        self._org_keys.add(candidate)
        return candidate

    # -- records ---------------------------------------------------------------------------------

    def company(self, name: str, identifier: str | None = None, deleted: bool = False) -> _Company:
        record: dict[str, Any] = {
            "id": self._company_ids.pop(),
            "identifier": self._identifier(name, identifier),
            "name": name,
        }
        if deleted:
            record["deletedFlag"] = True
            record["status"] = "Inactive"
        self.companies.append(record)
        return _Company(record)

    def org(self, name: str, key: str, usage: dict[str, int], first_month: int = 0) -> _Org:
        self._org_keys.add(key)
        org = _Org(name, key, dict(usage), dict(usage), dict(usage), first_month, self._org_ids.pop())
        org.created_at = self.org_created(first_month)
        self.orgs.append(org)
        return org

    def key_org(self, company: _Company, usage: dict[str, int], name: str | None = None) -> _Org:
        return self.org(name or company.record["name"], company.record["identifier"].lower(), usage)

    def name_org(self, company: _Company, usage: dict[str, int]) -> _Org:
        name = _variant(company.record["name"], self.rng)
        return self.org(name, self._other_key(name), usage)

    def org_created(self, first_month: int) -> str:
        """Created during the month before its first invoice (long ago for the first invoice)."""
        first = self.billing_dates[first_month]
        if first_month == 0 and self.rng.random() < 0.9:
            days = self.rng.randint(40, 2500)
        else:
            days = self.rng.randint(2, 27)
        return _ts(first - timedelta(days=days), self.rng.randint(8, 18), self.rng.randrange(60))

    # -- usage -----------------------------------------------------------------------------------

    def usage(self, min_products: int = 1) -> dict[str, int]:
        """One organization's units per product; most run EDR, subsets ITDR, SAT and SIEM."""
        rng = self.rng
        agents = max(1, min(4000, int(rng.lognormvariate(3.3, 1.0))))
        used = {
            "edr": rng.random() < 0.96,
            "itdr": rng.random() < 0.4,
            "sat": rng.random() < 0.35,
            "siem": rng.random() < 0.15,
        }
        while sum(used.values()) < min_products:
            used[next(p for p in PRODUCTS if not used[p])] = True
        users = max(1, round(agents * rng.uniform(0.6, 1.3)))
        return {
            "edr": agents if used["edr"] else 0,
            "itdr": max(1, round(users * rng.uniform(0.8, 1.1))) if used["itdr"] else 0,
            "sat": max(1, round(users * rng.uniform(0.5, 1.0))) if used["sat"] else 0,
            "siem": rng.randint(1, max(2, agents // 8)) if used["siem"] else 0,
        }

    def old_quantity(self, new: int) -> int:
        """What ConnectWise holds for a clean key: usage, or a drift from it that the guard lets through."""
        rng = self.change_rng
        draw, down = rng.random(), rng.random() < 0.6
        d = rng.randint(1, max(1, min(MAX_CHANGE_UNITS, round(new * 0.2))))
        if draw >= self.opts["change_share"]:
            self.keys["unchanged"] += 1
            return new
        self.keys["changed"] += 1
        return new - d if down and new - d >= 1 else new + d

    def clean_slots(
        self, usage: dict[str, int], split: bool, skip: tuple[str, ...] = ()
    ) -> dict[str, list[_Slot]]:
        """Additions for the clean keys; products in `skip` are left to the caller (a planted problem)."""
        slots: dict[str, list[_Slot]] = {}
        for p in PRODUCTS:
            on = "second" if split and p != "edr" else "primary"
            if p in skip:
                slots[p] = []
            elif usage[p] > 0:
                slots[p] = [_Slot(self.old_quantity(usage[p]), on)]
            elif p != "edr" and self.rng.random() < 0.08:
                # Bundled at zero ("add when they start"): a live addition that stays unchanged.
                slots[p] = [_Slot(0, on)]
                self.keys["unchanged"] += 1
            else:
                slots[p] = []
        return slots


# ---------------------------------------------------------------------------------------------
# Agreements and additions


_PRIMARY_NAMES = {
    "Managed Services": ["Managed Services", "Managed IT Services", "MSA", "Fully Managed"],
    "Security Bundle": ["Security Bundle", "Managed Security", "Cyber Protection Plan"],
}


class _Layout:
    """Agreements and additions of one company (mixed into the builder)."""

    b: _Builder

    def __init__(self, builder: _Builder) -> None:
        self.b = builder

    def agreement(self, company: _Company, type_: str, name: str, status: str = "Active") -> dict[str, Any]:
        b, rng = self.b, self.b.rng
        start = b.earliest - timedelta(days=rng.randint(150, 2200))
        b._next_agreement += 1 + (rng.random() < 0.1) * rng.randint(1, 3)
        record: dict[str, Any] = {
            "id": b._next_agreement,
            "name": name,
            "type": type_,
            "company_id": company.id,
            "agreementStatus": status,
            "cancelledFlag": status == "Cancelled",
            "startDate": _ts(start),
        }
        closed_on = start + timedelta(days=rng.randint(60, max(61, (b.earliest - start).days - 10)))
        if status == "Cancelled":
            record["dateCancelled"] = _ts(closed_on)
        elif status == "Expired":
            record["endDate"] = _ts(closed_on)
        elif rng.random() < 0.3:
            record["endDate"] = _ts(date(b.newest.year + rng.randint(1, 3), 12, 31))
        record["additions"] = []
        b.agreements.append(record)
        return record

    def addition(
        self, agreement: dict[str, Any], identifier: str, qty: int, state: str = "live"
    ) -> dict[str, Any]:
        b, rng = self.b, self.b.rng
        start = date.fromisoformat(agreement["startDate"][:10])
        closed = agreement.get("dateCancelled") or agreement.get("endDate")
        latest = b.earliest - timedelta(days=30)
        if agreement["agreementStatus"] != "Active" and closed:
            latest = min(latest, date.fromisoformat(closed[:10]) - timedelta(days=1))
        effective = start + timedelta(days=rng.randint(0, max(0, (latest - start).days)))
        cancelled = None
        status = "Active"
        if state == "cancelled":
            effective = min(effective, latest - timedelta(days=60))
            cancelled = effective + timedelta(days=rng.randint(30, max(30, (latest - effective).days)))
            status = "Cancelled"
        elif state in ("future", "ending"):
            switch = b.newest + timedelta(days=rng.randint(5, 45))
            if state == "future":
                effective = switch
            else:
                cancelled = switch
        product_id, _, description, price, cost = _CATALOG_ROW[identifier]
        b._next_addition += 1 + (rng.random() < 0.1) * rng.randint(1, 5)
        record = {
            "id": b._next_addition,
            "product_id": product_id,
            "quantity": qty,
            "effectiveDate": _ts(effective),
            "cancelledDate": _ts(cancelled) if cancelled else None,
            "agreementStatus": agreement["agreementStatus"],
            "additionStatus": status,
            "lessIncluded": 0,
            "unitPrice": price,
            "unitCost": cost,
            "billCustomer": "Billable",
            "description": description,
        }
        agreement["additions"].append(record)
        return record

    def place(self, company: _Company, where: str, primary_type: str) -> dict[str, Any]:
        """The agreement an addition goes on, created the first time it is needed."""
        if where in company.agreements:
            return company.agreements[where]
        rng = self.b.rng
        if where == "primary":
            ag = self.agreement(company, primary_type, rng.choice(_PRIMARY_NAMES[primary_type]))
        elif where == "second":
            other = "Security Bundle" if primary_type == "Managed Services" else "Managed Services"
            ag = self.agreement(company, other, rng.choice(_PRIMARY_NAMES[other]))
        elif where == "cancelled":
            ag = self.agreement(company, "Managed Services", "Managed Services (old contract)", "Cancelled")
        else:
            ag = self.agreement(
                company, "Security Bundle", f"Security Bundle {self.b.earliest.year - 2}", "Expired"
            )
        company.agreements[where] = ag
        return ag

    def huntress(
        self, company: _Company, slots: dict[str, list[_Slot]], usage: dict[str, int]
    ) -> dict[str, list]:
        """Lay out the planned Huntress additions, the usual non-Huntress ones and extra agreements."""
        rng = self.b.rng
        primary_type = "Managed Services" if rng.random() < 0.7 else "Security Bundle"
        placed: dict[str, list] = {}
        for p in PRODUCTS:
            for slot in slots.get(p, []):
                ag = self.place(company, slot.on, primary_type)
                added = self.addition(ag, HUNTRESS_ITEMS[p], slot.qty, slot.state)
                placed.setdefault(p, []).append(added)
                if slot.qty == 0 and usage[p] == 0:
                    self.b.distractors["zero_quantity_addition"].append(
                        {"company_id": company.id, "product": p, "addition_id": added["id"]}
                    )
            self.maybe_replaced(company, p, slots.get(p, []))
        primary = self.place(company, "primary", primary_type)
        self.everyday_additions(primary, usage)
        self.extra_agreements(company, huntress_customer=True)
        return placed

    def maybe_replaced(self, company: _Company, p: str, slots: list[_Slot]) -> None:
        """Now and then the product's previous addition, replaced long ago: cancelled, must be ignored."""
        rng = self.b.rng
        if len(slots) != 1 or slots[0].state != "live" or slots[0].on not in ("primary", "second"):
            return
        if slots[0].qty == 0 or rng.random() >= 0.08:
            return
        ag = company.agreements[slots[0].on]
        old = self.addition(ag, HUNTRESS_ITEMS[p], max(1, slots[0].qty - rng.randint(1, 5)), "cancelled")
        self.b.distractors["addition_cancelled_in_past"].append(
            {"company_id": company.id, "product": p, "addition_id": old["id"]}
        )

    def everyday_additions(self, agreement: dict[str, Any], usage: dict[str, int]) -> None:
        rng = self.b.rng
        devices = max(1, usage.get("edr", 0) or rng.randint(3, 40))
        users = max(1, round(devices * rng.uniform(0.5, 1.2)))
        if agreement["type"] == "Managed Services" or rng.random() < 0.3:
            self.addition(agreement, rng.choice(["M365-E3", "M365-BP", "M365-BP"]), users)
        if rng.random() < 0.7:
            self.addition(agreement, "RMM-AGENT", devices + rng.randint(0, 5))
        if rng.random() < 0.4:
            self.addition(agreement, "MS-HELPDESK", users)
        if rng.random() < 0.25:
            self.addition(agreement, "FIREWALL-MGMT", rng.randint(1, 3))

    def extra_agreements(self, company: _Company, huntress_customer: bool) -> None:
        """Top the company up to about `agreements_per_company` agreements of the other kinds."""
        rng, per = self.b.rng, self.b.opts["agreements_per_company"]
        target = int(per) + (rng.random() < per - int(per)) - (0 if huntress_customer else 1)
        while len(company.agreements) < target:
            self.extra_agreement(company, len(company.agreements), huntress_customer)

    def extra_agreement(self, company: _Company, index: int, huntress_customer: bool) -> None:
        rng, b = self.b.rng, self.b
        kind = rng.choices(
            ["block", "project", "backup", "old_msa", "old_bundle", "domains"], [3, 3, 2, 2, 1, 1]
        )[0]
        key = f"extra{index}"
        if kind == "block":
            ag = self.agreement(
                company, "Block Time", rng.choice(["Block Time 10h", "Prepaid Hours", "Block Hours"])
            )
            if rng.random() < 0.5:
                self.addition(ag, "BLOCK-10HR", rng.randint(1, 4))
        elif kind == "project":
            status = rng.choice(["Active", "Expired"])
            name = rng.choice(
                ["Network Refresh", "Office Move", "M365 Migration", "Server Replacement", "Wi-Fi Upgrade"]
            )
            self.agreement(company, "Project", f"{name} {b.earliest.year - rng.randint(0, 2)}", status)
        elif kind == "backup":
            ag = self.agreement(company, "Managed Services", "Backup & DR")
            self.addition(ag, "BACKUP-SERVER", rng.randint(1, 4))
            if rng.random() < 0.6:
                self.addition(ag, "BACKUP-WKS", rng.randint(5, 60))
        elif kind == "domains":
            ag = self.agreement(company, "Managed Services", "Domains & DNS")
            self.addition(ag, "DOMAIN-REG", rng.randint(1, 6))
        else:
            closed = "Cancelled" if kind == "old_msa" else "Expired"
            type_ = "Managed Services" if kind == "old_msa" else "Security Bundle"
            ag = self.agreement(company, type_, f"{type_} (superseded)", closed)
            self.addition(ag, "RMM-AGENT", rng.randint(3, 50))
            if huntress_customer or rng.random() < 0.3:
                # A Huntress addition left on a closed agreement: looks live, never is.
                p = rng.choice(["edr", "edr", "sat"])
                old = self.addition(ag, HUNTRESS_ITEMS[p], rng.randint(3, 60))
                b.distractors["stale_addition_on_closed_agreement"].append(
                    {
                        "company_id": company.id,
                        "product": p,
                        "addition_id": old["id"],
                        "agreement_status": closed,
                    }
                )
        company.agreements[key] = b.agreements[-1]


# ---------------------------------------------------------------------------------------------
# Cases


def _count(share: float, minimum: int, n: int) -> int:
    return max(minimum, round(share * n))


def _plan(b: _Builder) -> list[_Case]:
    """The list of cases (customers) to build; exactly N organizations in total."""
    n, rng = b.n, b.rng
    cases: list[_Case] = []
    budget = n
    if not b.opts["clean"]:
        problem_cases = _problem_cases(n)
        cap = math.floor(n * MAX_PROBLEM_SHARE)
        for case in problem_cases:
            if case.size <= cap:
                cases.append(case)
                cap -= case.size
        budget -= sum(c.size for c in cases)
    for kind in ("deleted_twin_companies", "key_beats_name", "price_changes"):
        for _ in range(_count(*SHARES[kind], n)):
            if budget > 0:
                cases.append(_Case(kind))
                budget -= 1
    for _ in range(_count(*SHARES["multi_organization_companies"], n)):
        size = rng.choice([2, 2, 3])
        if budget >= size + 1:
            cases.append(_Case("multi", size=size))
            budget -= size
    names = min(budget, _count(SHARES["name_matched"][0], SHARES["name_matched"][1], budget))
    news = min(budget - names, round(SHARES["new_organizations"][0] * budget))
    cases += [_Case("name")] * names + [_Case("new")] * news + [_Case("key")] * (budget - names - news)
    cases += [_Case("prospect", size=0)] * _count(*SHARES["prospect_companies"], n)
    rng.shuffle(cases)
    # The trap borrows the name of a company built before it.
    cases.sort(key=lambda c: c.kind == "key_beats_name")
    return cases


def _problem_cases(n: int) -> list[_Case]:
    """Round robin over codes and variants, so a small N still gets one of each code first."""
    per_code: dict[str, list[_Case]] = {}
    for code, (share, variants) in PROBLEMS.items():
        count = _count(share, len(variants), n)
        if code == "invalid_usage":
            # Two bad values per host organization, on two different products.
            cycle = itertools.cycle(variants)
            per_code[code] = [_Case(code, (next(cycle), next(cycle))) for _ in range((count + 1) // 2)]
        else:
            chosen = [variants[i % len(variants)] for i in range(count)]
            # A customer gone from Huntress altogether has no organization to spend.
            per_code[code] = [_Case(code, (v,), 0 if v == "no_organization" else 1) for v in chosen]
    ordered: list[_Case] = []
    for i in range(max(len(v) for v in per_code.values())):
        ordered += [cases[i] for cases in per_code.values() if i < len(cases)]
    return ordered


class _Cases(_Layout):
    """One builder per kind of case."""

    def __init__(self, builder: _Builder) -> None:
        super().__init__(builder)
        self.special_key = list(SPECIAL_KEY_NAMES)
        self.special_name = list(SPECIAL_NAME_NAMES)

    def build(self, case: _Case) -> None:
        getattr(self, f"case_{case.kind}")(case)

    # -- clean ------------------------------------------------------------------------------------

    def _named_company(self, special: list) -> _Company:
        if special:
            item = special.pop(0)
            return self.b.company(*item) if isinstance(item, tuple) else self.b.company(item)
        return self.b.company(self.b._fresh_name())

    def clean_company(self, orgs_usage: list[dict[str, int]], company: _Company) -> dict[str, list]:
        total = {p: sum(u[p] for u in orgs_usage) for p in PRODUCTS}
        slots = self.b.clean_slots(total, split=self.b.rng.random() < 0.2)
        return self.huntress(company, slots, total)

    def case_key(self, case: _Case, first_month: int = 0) -> tuple[_Company, _Org]:
        b = self.b
        special = bool(self.special_key)
        company = self._named_company(self.special_key)
        # Huntress names drift from ConnectWise's now and then; the key still decides.
        renamed = not special and b.rng.random() < 0.2
        org = b.key_org(company, b.usage(), _variant(company.record["name"], b.rng) if renamed else None)
        org.first_month = first_month
        self.sync_previous([org], self.clean_company([org.usage], company))
        b.key_matched.append(company)
        return company, org

    def case_new(self, case: _Case) -> None:
        self.case_key(case, first_month=self.b.months - 1)

    def case_name(self, case: _Case) -> _Company:
        company = self._named_company(self.special_name)
        org = self.b.name_org(company, self.b.usage())
        self.sync_previous([org], self.clean_company([org.usage], company))
        return company

    def case_multi(self, case: _Case) -> None:
        b = self.b
        company = b.company(b._fresh_name())
        orgs = [b.key_org(company, b.usage())] + [
            b.name_org(company, b.usage()) for _ in range(case.size - 1)
        ]
        self.sync_previous(orgs, self.clean_company([o.usage for o in orgs], company))

    def case_prospect(self, case: _Case) -> None:
        b, rng = self.b, self.b.rng
        company = b.company(b._fresh_name())
        company.record["types"] = [rng.choice(["Prospect", "Client", "Client"])]
        if rng.random() < 0.7:
            ag = self.agreement(company, "Managed Services", rng.choice(_PRIMARY_NAMES["Managed Services"]))
            company.agreements["primary"] = ag
            self.everyday_additions(ag, {})
        self.extra_agreements(company, huntress_customer=False)

    def case_deleted_twin_companies(self, case: _Case) -> None:
        """A merged-away duplicate (deletedFlag) shares the name: the match must stay unique."""
        company = self.case_name(case)
        twin = self.b.company(_variant(company.record["name"], self.b.rng), deleted=True)
        self.b.distractors["deleted_twin_company"].append(
            {"company_id": company.id, "deleted_company_id": twin.id}
        )

    def case_key_beats_name(self, case: _Case) -> None:
        """The organization's key names one company, its name another: rule 2 (key) wins over rule 3."""
        b = self.b
        if not b.key_matched:
            self.case_key(case)
            return
        other = b.rng.choice(b.key_matched)
        company = b.company(b._fresh_name())
        org = b.key_org(company, b.usage(), _variant(other.record["name"], b.rng))
        self.sync_previous([org], self.clean_company([org.usage], company))
        b.distractors["key_beats_name"].append(
            {"organization_id": org.id, "company_id": company.id, "name_matches_company_id": other.id}
        )

    def case_price_changes(self, case: _Case) -> None:
        """Re-priced product: the old addition ends after the billing date, the new one starts then."""
        b = self.b
        company = b.company(b._fresh_name())
        org = b.key_org(company, b.usage())
        slots = b.clean_slots(org.usage, split=False)
        p = "edr" if org.usage["edr"] else next(p for p in PRODUCTS if org.usage[p])
        qty = slots[p][0].qty
        slots[p] = [_Slot(qty, state="ending"), _Slot(org.usage[p], state="future")]
        placed = self.huntress(company, slots, org.usage)
        self.sync_previous([org], placed)
        b.distractors["price_change"].append(
            {"company_id": company.id, "product": p, "addition_ids": [a["id"] for a in placed[p]]}
        )

    def sync_previous(self, orgs: list[_Org], placed: dict[str, list]) -> None:
        """Last month's invoice carried what ConnectWise holds now (the sync ran then too)."""
        for p, additions in placed.items():
            live = [a for a in additions if _live(a, self.b.newest)]
            if len(live) != 1:
                continue  # a planted problem: last month looked like this month
            shift = live[0]["quantity"] - sum(o.usage[p] for o in orgs)
            largest = max(orgs, key=lambda o: o.usage[p])
            largest.previous[p] = max(0, largest.usage[p] + shift)


class _ProblemCases(_Cases):
    """Planted problems (one reason code each, the organization's other keys stay clean)."""

    def host(self, min_products: int = 2) -> tuple[_Company, _Org]:
        b = self.b
        company = b.company(b._fresh_name())
        return company, b.key_org(company, b.usage(min_products))

    def plant(self, code: str, variant: str, **entry: Any) -> None:
        self.b.planted[code].append({**entry, "variant": variant})

    def pick(self, org: _Org, exclude: tuple[str, ...] = ()) -> str:
        return self.b.rng.choice([p for p in PRODUCTS if org.usage[p] > 0 and p not in exclude])

    # -- organization level -------------------------------------------------------------------------

    def case_unmapped_organization(self, case: _Case) -> None:
        b = self.b
        variant = case.variants[0]
        if variant == "not_in_connectwise":
            # A new customer nobody has set up in ConnectWise yet.
            name = b._fresh_name()
            org = b.org(name, b._other_key(name), b.usage(), first_month=b.months - 1)
            self.plant("unmapped_organization", variant, organization_id=org.id)
        elif variant == "name_mismatch":
            self.name_mismatch(variant)
        else:
            name = b._fresh_name()
            gone = b.company(name, deleted=True)
            org = b.org(_variant(name, b.rng), gone.record["identifier"].lower(), b.usage())
            self.plant("unmapped_organization", variant, organization_id=org.id, deleted_company_id=gone.id)

    def name_mismatch(self, variant: str) -> None:
        """Same customer, differently named on each side: unmapped, and its additions go missing."""
        b, rng = self.b, self.b.rng
        for _ in range(200):
            long_industry = rng.choice(sorted(ABBREVIATIONS))
            place = rng.choice(PLACES)
            full, short = f"{place} {long_industry}", f"{place} {ABBREVIATIONS[long_industry]}"
            if fold(full) not in b._folded and fold(short) not in b._folded:
                break
        else:
            full, short = b._fresh_name() + " Services", b._fresh_name()
        b._claim_name(full)
        b._claim_name(short)
        company = b.company(short + rng.choice(["", " LLC", ", Inc."]))
        org = b.org(full, b._other_key(full), b.usage())
        slots = {p: [_Slot(org.usage[p])] if org.usage[p] else [] for p in PRODUCTS}
        self.huntress(company, slots, org.usage)
        self.plant("unmapped_organization", variant, organization_id=org.id, intended_company_id=company.id)
        for p in PRODUCTS:
            if org.usage[p]:
                self.plant(
                    "missing_from_invoice",
                    "organization_unmapped",
                    company_id=company.id,
                    product=p,
                    organization_id=org.id,
                )

    def case_ambiguous_company_match(self, case: _Case) -> None:
        """The company was entered twice in ConnectWise; neither copy bills Huntress yet."""
        b, rng = self.b, self.b.rng
        name = b._fresh_name()
        first = b.company(name)
        second = b.company(_variant(name, rng), identifier=first.record["identifier"])
        ag = self.agreement(first, "Managed Services", rng.choice(_PRIMARY_NAMES["Managed Services"]))
        first.agreements["primary"] = ag
        self.everyday_additions(ag, {})
        self.extra_agreements(first, huntress_customer=False)
        org_name = _variant(name, rng)
        org = b.org(org_name, b._other_key(org_name), b.usage())
        self.plant(
            "ambiguous_company_match",
            case.variants[0],
            organization_id=org.id,
            company_ids=[first.id, second.id],
        )

    def case_missing_from_invoice(self, case: _Case) -> None:
        """A customer that left Huntress; the EDR addition was never ended."""
        b = self.b
        variant = case.variants[0]
        company = b.company(b._fresh_name())
        qty = max(1, int(b.rng.lognormvariate(3.0, 0.8)))
        usage = {"edr": qty, "itdr": 0, "sat": 0, "siem": 0}
        entry: dict[str, Any] = {"company_id": company.id, "product": "edr"}
        if variant == "churned_organization":
            org = b.key_org(company, usage)
            org.line = None
            org.usage = {p: 0 for p in PRODUCTS}
            entry["organization_id"] = org.id
        self.huntress(company, {"edr": [_Slot(qty)]}, usage)
        self.plant("missing_from_invoice", variant, **entry)

    # -- key level -----------------------------------------------------------------------------------

    def case_no_live_addition(self, case: _Case) -> None:
        b = self.b
        variant = case.variants[0]
        company, org = self.host()
        p = self.pick(org)
        slots = b.clean_slots(org.usage, split=False, skip=(p,))
        qty = org.usage[p]
        slots[p] = {
            "cancelled_agreement": [_Slot(qty, on="cancelled")],
            "cancelled_addition": [_Slot(qty, state="cancelled")],
            "future_effective": [_Slot(qty, state="future")],
            "expired_agreement": [_Slot(qty, on="expired")],
            "no_addition": [],
        }[variant]
        self.sync_previous([org], self.huntress(company, slots, org.usage))
        self.plant("no_live_addition", variant, company_id=company.id, product=p, organization_id=org.id)

    def case_duplicate_addition(self, case: _Case) -> None:
        b = self.b
        variant = case.variants[0]
        company, org = self.host()
        p = self.pick(org)
        slots = b.clean_slots(org.usage, split=False, skip=(p,))
        qty = org.usage[p]
        second = "primary" if variant == "same_agreement" else "second"
        slots[p] = [_Slot(qty), _Slot(max(1, qty - b.rng.randint(0, 3)), on=second)]
        placed = self.huntress(company, slots, org.usage)
        self.sync_previous([org], placed)
        self.plant(
            "duplicate_addition",
            variant,
            company_id=company.id,
            product=p,
            organization_id=org.id,
            addition_ids=[a["id"] for a in placed[p]],
        )

    def case_invalid_usage(self, case: _Case) -> None:
        b, rng = self.b, self.b.rng
        company, org = self.host(min_products=3)
        chosen = rng.sample([p for p in PRODUCTS if org.usage[p] > 0], len(case.variants))
        slots = b.clean_slots(org.usage, split=False, skip=tuple(chosen))
        for p, variant in zip(chosen, case.variants, strict=True):
            # ConnectWise holds the true count; only the invoice line is broken.
            slots[p] = [_Slot(org.usage[p])]
            self.corrupt(org, p, variant)
            self.plant("invalid_usage", variant, company_id=company.id, product=p, organization_id=org.id)
        self.sync_previous([org], self.huntress(company, slots, org.usage))

    def corrupt(self, org: _Org, p: str, variant: str) -> None:
        rng, u = self.b.rng, org.usage[p]
        assert org.line is not None
        if variant == "missing":
            del org.line[p]
            return
        org.line[p] = {
            "negative": -rng.choice([1, u, rng.randint(2, 50)]),
            "string": str(u),
            "fractional": u + rng.choice([0.5, 0.25, 0.75]),
            "null": None,
            "huge": rng.choice([10**12, 4_294_967_295, 2**53]),
        }[variant]

    def case_change_exceeds_limit(self, case: _Case) -> None:
        b = self.b
        variant = case.variants[0]
        company, org = self.host()
        p = self.pick(org, exclude=("edr",)) if variant == "drop_to_zero" else self.pick(org)
        old, new = self.guard_tripping(variant, org.usage[p])
        assert _held(old, new), (variant, old, new)
        org.usage[p] = new
        assert org.line is not None
        org.line[p] = new
        slots = b.clean_slots(org.usage, split=False, skip=(p,))
        slots[p] = [_Slot(old)]
        placed = self.huntress(company, slots, org.usage)
        self.sync_previous([org], placed)
        org.previous[p] = old
        self.plant(
            "change_exceeds_limit",
            variant,
            company_id=company.id,
            product=p,
            organization_id=org.id,
            previous_quantity=old,
            usage=new,
        )

    def guard_tripping(self, variant: str, usage: int) -> tuple[int, int]:
        rng = self.b.rng
        if variant == "jump_up":
            old = max(4, usage)
            return old, old + max(MAX_CHANGE_UNITS + 1, math.floor(old * MAX_CHANGE_RATIO) + 1) + rng.randint(
                0, 15
            )
        if variant == "big_drop":
            old = max(30, usage)
            return old, rng.randint(1, old // 2 - 1)
        if variant == "drop_to_zero":
            # Small on purpose: only the drop-to-zero rule holds it, not the unit limit.
            return rng.randint(2, 9), 0
        return 0, rng.randint(MAX_CHANGE_UNITS + 5, 60)  # from_zero


def _live(addition: dict[str, Any], billing: date) -> bool:
    """ConnectWise reference, "Billing semantics" (the agreement's state is mirrored on the addition)."""
    day, cancelled = _ts(billing), addition["cancelledDate"]
    return (
        addition["agreementStatus"] == "Active"
        and addition["additionStatus"] == "Active"
        and (cancelled is None or cancelled > day)
        and addition["effectiveDate"] <= day
    )


def _held(old: int, new: int) -> bool:
    d = abs(new - old)
    return (d > MAX_CHANGE_UNITS and d > MAX_CHANGE_RATIO * old) or (old > 0 and new == 0)


# ---------------------------------------------------------------------------------------------
# Assembly


def generate(organizations: int, seed: int, **options: Any) -> dict[str, Any]:
    """A complete scenario (CONTRACTS §5 plus extensions) for `organizations` Huntress organizations."""
    opts = _options(organizations, options)
    b = _Builder(organizations, seed, opts)
    cases = _plan(b)
    builder = _ProblemCases(b)
    for case in cases:
        builder.build(case)
    assert len(b.orgs) == organizations, (len(b.orgs), organizations)
    scenario = {
        "huntress": _huntress(b),
        "connectwise": _connectwise(b),
        "meta": _meta(b),
    }
    return real_world.apply(scenario, seed) if opts["real_world"] else scenario


def _options(organizations: int, options: dict[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown option(s): {sorted(unknown)}")
    opts = {**DEFAULTS, **options}
    if isinstance(opts["billing_date"], date):
        opts["billing_date"] = opts["billing_date"].isoformat()
    date.fromisoformat(opts["billing_date"])  # ValueError when malformed
    checks = [
        (isinstance(organizations, int) and organizations >= 1, "organizations must be at least 1"),
        (isinstance(opts["months"], int) and 1 <= opts["months"] <= 36, "months must be 1..36"),
        (0 <= opts["change_share"] <= 1, "change_share must be between 0 and 1"),
        (1 <= opts["agreements_per_company"] <= 20, "agreements_per_company must be 1..20"),
        (
            isinstance(opts["rate_limit"], int) and opts["rate_limit"] >= 1,
            "rate_limit must be a positive integer",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(message)
    opts["clean"] = bool(opts["clean"])
    opts["real_world"] = bool(opts["real_world"])
    return opts


def _huntress(b: _Builder) -> dict[str, Any]:
    orgs = sorted(b.orgs, key=lambda o: o.id)
    return {
        "api_key": "hk_demo",
        "api_secret": "hs_demo",
        "rate_limit_per_minute": b.opts["rate_limit"],
        "rate_limit_window_s": 60,
        "account": {"id": 1, "name": "Demo MSP", "subdomain": "demomsp"},
        "organizations": [_org_record(o) for o in orgs],
        "invoices": _invoices(b, orgs),
    }


def _org_record(o: _Org) -> dict[str, Any]:
    usages: dict[str, Any] = {
        "edr": {"billable_agents_count": o.usage["edr"]},
        "sat": {"learners_count": o.usage["sat"]},
        "siem": {"billable_log_sources_count": o.usage["siem"]},
        "itdr": [],
    }
    if o.usage["itdr"]:
        tenant = f"{o.id:08x}-0000-4000-8000-{o.id:012x}"
        usages["itdr"].append(
            {
                "type": "microsoft",
                "identity_provider_tenant_id": tenant,
                "billable_identities_count": o.usage["itdr"],
                "total_identities_count": o.usage["itdr"] + o.id % 7,
            }
        )
    # agents_count counts every agent, billable or not (a few unresponsive/test machines).
    agents = o.usage["edr"] + (o.id % 4 if o.usage["edr"] else 0)
    return {
        "id": o.id,
        "name": o.name,
        "key": o.key,
        "created_at": o.created_at,
        "agents_count": agents,
        "actual_usages": usages,
    }


def _history(b: _Builder, org: _Org) -> list[dict[str, Any] | None]:
    """The organization's actual_usage on each invoice, oldest first (None: not on that invoice)."""
    rng, months = b.rng, b.months
    out: list[dict[str, Any] | None] = [None] * months
    out[-1] = org.line
    current = dict(org.previous)
    for k in range(months - 2, -1, -1):
        if k >= org.first_month:
            out[k] = dict(current)
        current = {p: max(0, v - _drift(rng, v)) if v else 0 for p, v in current.items()}
    return out


def _drift(rng: random.Random, value: int) -> int:
    """Month-over-month growth: most months flat, else a few percent either way."""
    if rng.random() < 0.55:
        return 0
    step = max(1, round(value * 0.04))
    return rng.randint(-step, step)


def _invoices(b: _Builder, orgs: list[_Org]) -> list[dict[str, Any]]:
    histories = {o.id: _history(b, o) for o in orgs}
    invoices = []
    line_id = 90000
    for k, billed in enumerate(b.billing_dates):
        lines = []
        for o in orgs:
            usage = histories[o.id][k]
            if usage is not None:
                line_id += 1
                lines.append({"id": line_id, "organization_id": o.id, "actual_usage": usage})
        invoices.append(_invoice(5001 + k, billed, lines))
    return invoices


_CENTS = {"edr": 300, "itdr": 200, "sat": 100, "siem": 500}


def _invoice(invoice_id: int, billed: date, lines: list[dict[str, Any]]) -> dict[str, Any]:
    def count(line: dict[str, Any], p: str) -> int:
        v = line["actual_usage"].get(p)
        return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**7 else 0

    return {
        "id": invoice_id,
        "created_at": _ts(billed, 6),
        "updated_at": _ts(billed, 6, 42),
        "status": "paid",
        "plan": "Huntress Partner",
        "currency_type": "usd",
        "period_start": _ts(_months_back(billed, 1)),
        "period_end": _ts(billed),
        "quantity": sum(count(line, "edr") for line in lines),
        "amount": sum(count(line, p) * c for line in lines for p, c in _CENTS.items()),
        "has_usage": bool(lines),
        "receipt": f"https://pay.stripe.com/invoice/acct_demomsp/invst_{invoice_id:08d}",
        "lines": lines,
    }


def _connectwise(b: _Builder) -> dict[str, Any]:
    return {
        "company_id": "demomsp",
        "public_key": "pub",
        "private_key": "priv",
        "client_id": "00000000-0000-0000-0000-000000000000",
        "companies": sorted(b.companies, key=lambda c: c["id"]),
        "catalog": [
            {
                "id": cid,
                "identifier": ident,
                "description": desc,
                "productClass": "NonInventory" if ident != "BLOCK-10HR" else "Service",
                "price": price,
                "cost": cost,
                "recurringFlag": ident != "BLOCK-10HR",
            }
            for cid, ident, desc, price, cost in CATALOG
        ],
        "agreements": b.agreements,
    }


def _meta(b: _Builder) -> dict[str, Any]:
    additions = sum(len(a["additions"]) for a in b.agreements)
    return {
        "generator": {"version": GENERATOR_VERSION, "seed": b.seed, "organizations": b.n, **b.opts},
        "billing_date": b.newest.isoformat(),
        "billing_dates": [d.isoformat() for d in b.billing_dates],
        "planted": b.planted,
        "shares": {
            "change_share": b.opts["change_share"],
            "problems": {
                code: {"per_organization": share, "minimum": len(variants), "variants": list(variants)}
                for code, (share, variants) in PROBLEMS.items()
            },
            "structure": {k: {"per_organization": s, "minimum": m} for k, (s, m) in SHARES.items()},
        },
        "counts": {
            "planted": {code: len(entries) for code, entries in b.planted.items()},
            "clean_keys": dict(b.keys),
            "organizations": len(b.orgs),
            "companies": len(b.companies),
            "agreements": len(b.agreements),
            "additions": additions,
            "invoice_lines": sum(1 for o in b.orgs if o.line is not None),
        },
        "distractors": b.distractors,
    }


# ---------------------------------------------------------------------------------------------
# Output


def dumps(scenario: dict[str, Any], indent: int = 1) -> str:
    """Scenario JSON text. indent 0 = one line; otherwise records with no nested records stay on one line."""
    if indent <= 0:
        return json.dumps(scenario, ensure_ascii=False, separators=(",", ":")) + "\n"
    return _pretty(scenario, 0, indent) + "\n"


def _flat(value: Any) -> bool:
    """No list of records anywhere inside: short enough to read on one line."""
    if isinstance(value, dict):
        return all(_flat(v) for v in value.values())
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) for v in value)
    return True


def _inline(value: Any, level: int) -> bool:
    if not isinstance(value, dict | list):
        return True
    if level < 2:
        return False
    return _flat(value) or (isinstance(value, dict) and len(json.dumps(value, ensure_ascii=False)) <= 320)


def _pretty(value: Any, level: int, indent: int) -> str:
    if _inline(value, level):
        return json.dumps(value, ensure_ascii=False)
    pad, end = " " * (indent * (level + 1)), " " * (indent * level)
    if isinstance(value, dict):
        body = [
            f"{pad}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, level + 1, indent)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(body) + "\n" + end + "}" if body else "{}"
    body = [pad + _pretty(v, level + 1, indent) for v in value]
    return "[\n" + ",\n".join(body) + "\n" + end + "]" if body else "[]"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m billing_sandbox generate",
        description="Write a realistic sandbox scenario with a documented share of planted problems.",
    )
    p.add_argument("--organizations", type=int, required=True, help="number of Huntress organizations")
    p.add_argument("--seed", type=int, default=42, help="random seed (same seed, same file) [42]")
    p.add_argument("--out", default="-", help="output file, '-' for stdout [-]")
    for name, type_, text in (
        ("billing_date", str, "newest invoice's billing date, YYYY-MM-DD (created that day 06:00Z)"),
        ("months", int, "monthly invoices ending at the billing date"),
        ("change_share", float, "share of clean keys whose ConnectWise quantity differs from the usage"),
        ("agreements_per_company", float, "mean agreements per company with Huntress"),
        ("rate_limit", int, "Huntress requests per minute"),
    ):
        flag = "--" + name.replace("_", "-")
        p.add_argument(flag, type=type_, default=DEFAULTS[name], help=f"{text} [%(default)s]")
    p.add_argument("--clean", action="store_true", help="plant no problems (traps stay)")
    p.add_argument("--real-world", action="store_true",
                   help="managed accounts, missing dates and products, a voided invoice (real_world.py)")
    p.add_argument("--compact", action="store_true", help="one-line JSON (faster, smaller)")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    options = {name: getattr(args, name) for name in DEFAULTS}  # each generate() option has its flag
    try:
        scenario = generate(args.organizations, args.seed, **options)
    except ValueError as exc:
        parser.error(str(exc))
    text = dumps(scenario, indent=0 if args.compact else 1)
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    counts = scenario["meta"]["counts"]
    planted = ", ".join(f"{k}={v}" for k, v in counts["planted"].items() if v)
    print(
        f"wrote {args.out}: {counts['organizations']} organizations, {counts['companies']} companies, "
        f"{counts['agreements']} agreements, {counts['additions']} additions; planted: {planted or 'none'}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
