"""The cases (customers) a scenario is built from: the plan, and the clean cases."""

from __future__ import annotations

import itertools
import math
from datetime import date
from typing import Any

from .builder import _Builder
from .layout import _PRIMARY_NAMES, _Layout
from .model import MAX_PROBLEM_SHARE, PROBLEMS, PRODUCTS, SHARES, _Case, _Company, _Org, _Slot, _ts
from .names import SPECIAL_KEY_NAMES, SPECIAL_NAME_NAMES, _variant

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


def _live(addition: dict[str, Any], billing: date) -> bool:
    """ConnectWise reference, "Billing semantics" (the agreement's state is mirrored on the addition)."""
    day, cancelled = _ts(billing), addition["cancelledDate"]
    return (
        addition["agreementStatus"] == "Active"
        and addition["additionStatus"] == "Active"
        and (cancelled is None or cancelled > day)
        and addition["effectiveDate"] <= day
    )
