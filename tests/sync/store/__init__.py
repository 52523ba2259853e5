"""store: shared rows and frames. The `db_url` fixture runs every database test on SQLite and
PostgreSQL alike; `engine` (conftest) is an engine on it."""

from __future__ import annotations

from datetime import date

import pandas as pd

from billing_sync import frames

INJECTION = "O'Brien \"Ltd\"'; DROP TABLE billing_quarantine;--"
DAY = date(2026, 11, 1)


def q_row(key: str = "company:250:edr", reason: str = "no_live_addition", **extra: object) -> dict:
    row = {
        "sync_key": key,
        "huntress_organization_id": 101,
        "huntress_organization_name": "Acme Corp",
        "cw_company_id": 250,
        "product": "edr",
        "reason_code": reason,
        "detail": "no live addition for HUNTRESS-EDR",
        "payload": {"usage": 40, "lines": [9, 10]},
    }
    return row | extra


def change(key: str = "company:250:edr", action: str = "updated", **extra: object) -> dict:
    row = {
        "sync_key": key,
        "cw_company_id": 250,
        "agreement_id": 1578,
        "addition_id": 501,
        "product": "edr",
        "huntress_quantity": 40,
        "previous_quantity": 38.0,
        "new_quantity": 40,
        "action": action,
    }
    return row | extra


_SAMPLES = {
    "Int64": [1, 2**40, None, 0],
    "string": ["Café «Ünïcode» ✓", "<b>&amp; markup</b>\n\ttabbed C:\\new\\N", None, INJECTION],
    "Float64": [38.0, 0.1, None, -1.5e-300],
    "boolean": [True, False, None, True],
    "datetime64[ns, UTC]": [
        "2025-01-01T00:00:00Z",
        "2026-03-29T01:30:15.123456+02:00",  # a non-UTC offset comes back as the same instant in UTC
        None,
        "1999-12-31T23:59:59Z",
    ],
}


def sample_frame(name: str) -> pd.DataFrame:
    """Four rows for any frame in SCHEMAS: realistic values, and NA in every column of row 3."""
    data = {col: _SAMPLES[dtype] for col, dtype in frames.SCHEMAS[name].items()}
    return frames.conform(pd.DataFrame(data, dtype=object), name)
