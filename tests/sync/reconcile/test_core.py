"""reconcile/core.py: summarize, and reconcile at scale."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from billing_sync import frames, names
from billing_sync import reconcile as rc
from billing_sync.config import Settings
from tests.sync.reconcile import (
    BILLING,
    CATALOG,
    PRODUCTS,
    addition,
    additions_of,
    line,
    run,
    usage_of,
)

# --------------------------------------------------------------------------------------------
# summarize


def test_summarize_has_every_outcome_and_reason() -> None:
    out = run(
        usage_of(line(101, edr=40), line(102, "Nobody", edr=1)), additions=additions_of(addition(501, 250))
    )
    counts = rc.summarize(out)
    assert set(counts) == {*names.OUTCOMES, *names.PUSH_OUTCOMES, *names.REASON_CODES, "total"}
    assert counts["total"] == len(out) == 8
    assert counts["unchanged"] == 1 and counts["unmapped_organization"] == 1 and counts["push_rejected"] == 0
    assert sum(counts[o] for o in (*names.OUTCOMES, *names.PUSH_OUTCOMES)) == counts["total"]
    assert sum(counts[c] for c in names.REASON_CODES) == counts["quarantined"]
    after_push = out.assign(outcome=out["outcome"].replace({"unchanged": "updated"}))
    assert rc.summarize(after_push)["updated"] == 1


# --------------------------------------------------------------------------------------------
# Scale: 100,000 usage rows against 100,000 additions


def _big_case(n_orgs: int = 25_000, seed: int = 7) -> dict[str, Any]:
    """25k organizations × 4 products; 25k companies each with one live addition per product.

    About 30 % match by name, 2 % match nothing (their companies become missing_from_invoice),
    1 % of counts are invalid, half the quantities drift by up to 3 units.
    """
    rng = np.random.default_rng(seed)
    org_ids = np.arange(1, n_orgs + 1)
    comp_ids = org_ids + 100_000
    by_name = rng.random(n_orgs) < 0.3
    unmapped = rng.random(n_orgs) < 0.02
    org_names = np.array([f"Org {i} Ltd." for i in org_ids], dtype=object)
    organizations = pd.DataFrame(
        {"organization_id": org_ids, "name": org_names, "key": [f"org{i}" for i in org_ids]}
    )
    companies = pd.DataFrame(
        {
            "company_id": comp_ids,
            "identifier": np.where(
                by_name | unmapped, [f"x{i}" for i in org_ids], [f"ORG{i}" for i in org_ids]
            ),
            "name": np.where(unmapped, [f"Other {i}" for i in org_ids], [f"ORG {i} LTD" for i in org_ids]),
        }
    )
    qty = rng.integers(0, 200, size=(n_orgs, 4))
    bad = rng.random((n_orgs, 4)) < 0.01
    usage = pd.DataFrame(
        {
            "invoice_id": 5001,
            "line_id": np.repeat(org_ids, 4),
            "organization_id": np.repeat(org_ids, 4),
            "organization_name": np.repeat(org_names, 4),
            "product": np.tile(PRODUCTS, n_orgs),
            "raw_quantity": np.where(bad, "-1", qty.astype(str)).ravel(),
            "quantity": pd.array(np.where(bad, None, qty).ravel(), dtype="Int64"),
        }
    )
    drift = rng.integers(-3, 4, size=qty.shape) * (rng.random(qty.shape) < 0.5)
    additions = pd.DataFrame(
        {
            "addition_id": np.arange(1, 4 * n_orgs + 1),
            "agreement_id": np.repeat(comp_ids + 500_000, 4),
            "company_id": np.repeat(comp_ids, 4),
            "agreement_name": "Managed Security",
            "agreement_type": "Managed Services",
            "agreement_status": "Active",
            "agreement_cancelled": False,
            "product_identifier": np.tile([CATALOG[p] for p in PRODUCTS], n_orgs),
            "quantity": np.clip(qty + drift, 0, None).ravel().astype(float),
            "effective_date": "2025-01-01T00:00:00Z",
            "cancelled_date": None,
            "addition_status": "Active",
        }
    )
    return {
        "usage": frames.conform(usage, "usage"),
        "organizations": frames.conform(organizations, "organizations"),
        "companies": frames.conform(companies, "companies"),
        "additions": frames.conform(additions, "additions"),
        "org_map": frames.empty("org_map"),
        "settings": Settings(),
        "billing_date": BILLING,
    }


def test_100k_usage_rows_against_100k_additions() -> None:
    """Correctness at scale; its time and memory are measured by `make bench` (reconcile_scale),
    not asserted here: no test depends on the machine's speed."""
    case = _big_case()
    assert len(case["usage"]) == len(case["additions"]) == 100_000
    out = rc.reconcile(**case)
    counts = rc.summarize(out)
    assert counts["total"] == len(out) > 100_000
    assert counts["change"] > 30_000 and counts["unchanged"] > 30_000
    assert (
        counts["missing_from_invoice"] > 0
        and counts["unmapped_organization"] > 0
        and counts["invalid_usage"] > 0
    )
    assert out["sync_key"].is_unique
