"""Reconciliation: Huntress usage × ConnectWise additions → one outcome per sync key.

Pure functions on the frames of `frames.py`: no I/O, no Airflow, no GX. Everything that touches
every row is vectorized (merges, groupbys, numpy); Python loops only build the detail text of
quarantined keys, which are few, so 100k usage rows against 100k additions stay well under 2 s.

A sync key is one of
    company:<company_id>:<product>        usage of the organizations matched to a company
    organization:<organization_id>:<product>  usage of an organization no rule maps (or ambiguous)
    line:<line_id>:<product>              a usage line without an organization id
Every usage row of a configured product feeds exactly one key per catalog item of the product; a
(company, item) with live additions but no usage row gets a company key too (`missing_from_invoice`).
A product mapped to several catalog items (billing_sync.catalog) has a key per item, `<product>`
becoming `<product>:<catalog identifier>` in each form; a product with one item keeps the forms above.

    matching  organization → company: the rules and the never-guess fold
    live      what bills on a date
    keys      usage rows → one row per sync key, with its live additions
    overrides standing overrides (billing_overrides): the quantity a key aims for, before the guard
    decide    the guard; one outcome (and reason) per key
    details   the words of the details
    approvals a person's approval of a held change or a new addition, applied when it matches exactly
    money     the money of each key (unit price, monthly amount, amount at stake) and of a run
    core      `reconcile` and `summarize`, which run the above in order
    totals    a run's close: its outcomes after the push, the totals check, the run's money
    text      how values read in the words

Decisions where docs/contract.md is silent are marked "Decision:" in the docstrings of these modules.
"""

from __future__ import annotations

from .approvals import HELD_REASON, aimed_quantity, apply_approvals, live_agreements, proposal
from .core import reconcile, summarize
from .live import live_additions, live_mask
from .matching import MATCH_RULES, match_organizations, normalize_name, normalize_names
from .money import money_totals

__all__ = [
    "HELD_REASON",
    "MATCH_RULES",
    "aimed_quantity",
    "apply_approvals",
    "live_additions",
    "live_agreements",
    "live_mask",
    "match_organizations",
    "money_totals",
    "normalize_name",
    "normalize_names",
    "proposal",
    "reconcile",
    "summarize",
]
