"""Agreements and additions of one company."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from .builder import _Builder
from .model import _CATALOG_ROW, HUNTRESS_ITEMS, PRODUCTS, _Company, _Slot, _ts

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
