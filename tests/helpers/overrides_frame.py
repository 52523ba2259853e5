"""Standing overrides as the `overrides` frame reconcile reads, from short tuples."""

from __future__ import annotations

from typing import Any

import pandas as pd

from billing_sync import frames


def overrides_of(*rows: tuple[Any, ...]) -> pd.DataFrame:
    """(id, company, product, rule, quantity[, by]) rows as the `overrides` frame."""
    records = [
        {
            "override_id": r[0],
            "company_id": r[1],
            "product": r[2],
            "rule": r[3],
            "quantity": r[4],
            "created_by": (r + ("Jane Doe",))[5],
            "note": None,
        }
        for r in rows
    ]
    return frames.conform(pd.DataFrame(records, columns=list(frames.SCHEMAS["overrides"])), "overrides")
