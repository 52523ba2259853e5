"""The builder: ids, names, companies, organizations and their usage, clean quantities."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from .model import MAX_CHANGE_UNITS, PROBLEMS, PRODUCTS, _Company, _months_back, _Org, _Slot, _ts
from .names import (
    IDENTIFIER_MAX,
    INDUSTRIES,
    PARTNER_SUFFIXES,
    PARTNER_TRADES,
    PLACES,
    SHOPS,
    SPECIAL_KEY_NAMES,
    SPECIAL_NAME_NAMES,
    SUFFIXES,
    SURNAMES,
    _camel,
    _slug,
    _variant,
    fold,
)


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
