"""What the generator plants and how often, the catalog it sells, dates, and the records it plans with."""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import date
from typing import Any

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
# Guard used to keep clean changes clean and planted ones over the limit (docs/contract.md §1 defaults).
MAX_CHANGE_UNITS = 10
MAX_CHANGE_RATIO = 0.5


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
