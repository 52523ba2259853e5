"""Reconciliation of 100,000 usage rows against 100,000 additions: time and peak memory.

    python benchmarks/reconcile_scale.py [--organizations 25000] [--repeat 3]

The inputs are built and pickled by one process; a fresh process loads them and runs
`reconcile.reconcile` once cold (its peak RSS is the memory figure: interpreter, pandas, the
inputs and reconcile's working set, all counted), then `--repeat` times warm (the time figure is
the median), then once under tracemalloc (peak of Python-level allocations during the call).

The case: 25,000 organizations × 4 products; one company per organization and one live addition
per (company, product). 30 % match by name only, 2 % match no company (their additions become
missing_from_invoice), 1 % of counts are invalid, 1 % of companies get their EDR addition on a
cancelled agreement instead (no_live_addition), half the quantities drift by up to 3 (changes).
"""

from __future__ import annotations

import argparse
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib  # noqa: E402 - the sibling module, found through the line above

PRODUCTS = {"edr": "HUNTRESS-EDR", "itdr": "HUNTRESS-ITDR", "sat": "HUNTRESS-SAT", "siem": "HUNTRESS-SIEM"}
BILLING_DATE = date(2026, 11, 1)


def build(n_orgs: int, seed: int = 7) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from billing_sync import frames

    rng = np.random.default_rng(seed)
    org_ids = np.arange(1, n_orgs + 1)
    comp_ids = org_ids + 1_000_000
    by_name, unmapped = rng.random(n_orgs) < 0.30, rng.random(n_orgs) < 0.02
    names = np.array([f"Org {i} Ltd." for i in org_ids], dtype=object)
    qty = rng.integers(0, 300, size=(n_orgs, 4))
    bad = rng.random((n_orgs, 4)) < 0.01
    drift = rng.integers(-3, 4, size=qty.shape) * (rng.random(qty.shape) < 0.5)
    cancelled = np.repeat(rng.random(n_orgs) < 0.01, 4) & np.tile([True, False, False, False], n_orgs)
    usage = pd.DataFrame(
        {
            "invoice_id": 5001,
            "line_id": np.repeat(org_ids, 4),
            "organization_id": np.repeat(org_ids, 4),
            "organization_name": np.repeat(names, 4),
            "product": np.tile(list(PRODUCTS), n_orgs),
            "raw_quantity": np.where(bad, "12.5", qty.astype(str)).ravel(),
            "quantity": pd.array(np.where(bad, None, qty).ravel(), dtype="Int64"),
        }
    )
    companies = pd.DataFrame(
        {
            "company_id": comp_ids,
            "identifier": np.where(
                by_name | unmapped, [f"x{i}" for i in org_ids], [f"ORG{i}" for i in org_ids]
            ),
            "name": np.where(unmapped, [f"Other {i}" for i in org_ids], [f"ORG {i}  LTD" for i in org_ids]),
        }
    )
    additions = pd.DataFrame(
        {
            "addition_id": np.arange(1, 4 * n_orgs + 1),
            "agreement_id": np.repeat(comp_ids + 5_000_000, 4),
            "company_id": np.repeat(comp_ids, 4),
            "agreement_name": "Managed Security",
            "agreement_type": "Managed Services",
            "agreement_status": np.where(cancelled, "Cancelled", "Active"),
            "agreement_cancelled": cancelled,
            "product_identifier": np.tile(list(PRODUCTS.values()), n_orgs),
            "quantity": np.clip(qty + drift, 0, None).ravel().astype(float),
            "effective_date": "2025-01-01T00:00:00Z",
            "cancelled_date": None,
            "addition_status": "Active",
        }
    )
    organizations = pd.DataFrame(
        {"organization_id": org_ids, "name": names, "key": [f"org{i}" for i in org_ids]}
    )
    return {
        "usage": frames.conform(usage, "usage"),
        "organizations": frames.conform(organizations, "organizations"),
        "companies": frames.conform(companies, "companies"),
        "additions": frames.conform(additions, "additions"),
        "org_map": frames.empty("org_map"),
    }


def measure(inputs: Path, repeat: int) -> dict[str, Any]:
    """Runs in the fresh process: cold run (peak RSS), warm runs (time), tracemalloc run."""
    from billing_sync import reconcile
    from billing_sync.config import Settings

    case = pickle.loads(inputs.read_bytes())
    args = {**case, "settings": Settings(products=dict(PRODUCTS)), "billing_date": BILLING_DATE}
    rss_before = _max_rss_mib()
    started = time.perf_counter()
    out = reconcile.reconcile(**args)
    cold = time.perf_counter() - started
    rss_peak = _max_rss_mib()
    warm = [_timed(reconcile.reconcile, args) for _ in range(repeat)]
    tracemalloc.start()
    try:
        reconcile.reconcile(**args)
        traced_peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    counts = reconcile.summarize(out)
    return {
        "usage_rows": len(case["usage"]),
        "additions": len(case["additions"]),
        "keys": len(out),
        "cold_s": round(cold, 3),
        "warm_s": [round(t, 3) for t in warm],
        "median_s": round(benchlib.median(warm), 3),
        "rss_before_mib": round(rss_before, 1),
        "peak_rss_mib": round(rss_peak, 1),
        "tracemalloc_peak_mib": round(traced_peak, 1),
        "counts": {k: v for k, v in counts.items() if v},
        "load_average": benchlib.load_average(),
    }


def _timed(fn: Any, args: dict[str, Any]) -> float:
    started = time.perf_counter()
    fn(**args)
    return time.perf_counter() - started


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--organizations", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the fresh child process
    args = parser.parse_args(argv)
    if args.measure:
        benchlib.emit(measure(args.measure, args.repeat))
        return 0
    with tempfile.TemporaryDirectory(prefix="billing-bench-reconcile-") as tmp:
        inputs = Path(tmp) / "case.pickle"
        inputs.write_bytes(pickle.dumps(build(args.organizations), protocol=pickle.HIGHEST_PROTOCOL))
        done = subprocess.run(
            [benchlib.PYTHON, __file__, "--measure", str(inputs), "--repeat", str(args.repeat)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"reconcile measurement failed: {done.stderr[-2000:]}")
    sys.stdout.write(done.stdout.strip().splitlines()[-1] + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
