"""The planted problems: one reason code each, the organization's other keys stay clean."""

from __future__ import annotations

import math
from typing import Any

from .cases import _Cases
from .layout import _PRIMARY_NAMES
from .model import MAX_CHANGE_RATIO, MAX_CHANGE_UNITS, PRODUCTS, _Case, _Company, _Org, _Slot
from .names import ABBREVIATIONS, PLACES, _variant, fold


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


def _held(old: int, new: int) -> bool:
    d = abs(new - old)
    return (d > MAX_CHANGE_UNITS and d > MAX_CHANGE_RATIO * old) or (old > 0 and new == 0)
