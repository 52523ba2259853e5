"""reconcile: shared builders. API-shaped records go through the frames helpers, as the extract
tasks produce them; `run` checks the shape of every outcomes frame it returns."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from billing_sync import frames, names
from billing_sync import reconcile as rc
from billing_sync.config import Settings

BILLING = date(2026, 11, 1)
PRODUCTS = ("edr", "itdr", "sat", "siem")
CATALOG = {p: f"HUNTRESS-{p.upper()}" for p in PRODUCTS}
ABSENT = object()  # a product missing from a line's actual_usage


def line(org_id: int | None, name: str | None = None, line_id: int | None = None, **usage: Any) -> dict:
    counts = {p: 0 for p in PRODUCTS} | usage
    return {
        "id": line_id if line_id is not None else (org_id or 0) + 9000,
        "organization": {"id": org_id, "name": name if name is not None else f"Org {org_id}"},
        "actual_usage": {p: v for p, v in counts.items() if v is not ABSENT},
    }


def usage_of(*lines: dict, products: tuple[str, ...] = PRODUCTS) -> pd.DataFrame:
    return frames.usage_frame(5001, lines, products)


def orgs_of(*rows: tuple) -> pd.DataFrame:
    """(id, name, key[, account_id]) rows; the account is 1 (the reseller's own) unless given."""
    return frames.organizations_frame(
        [{"id": r[0], "name": r[1], "key": r[2], "account_id": (r + (1,))[3]} for r in rows]
    )


def companies_of(*rows: tuple[int, str | None, str | None]) -> pd.DataFrame:
    return frames.companies_frame([{"id": i, "identifier": ident, "name": n} for i, ident, n in rows])


def addition(
    addition_id: int,
    company_id: int,
    product: str = "edr",
    quantity: Any = 40,
    *,
    agreement_id: int | None = None,
    agreement_name: str = "Managed Security",
    agreement_type: str | None = "Managed Services",
    agreement_status: str | None = "Active",
    agreement_cancelled: bool | None = False,
    effective: str | None = "2025-01-01T00:00:00Z",
    cancelled: str | None = None,
    status: str | None = "Active",
    identifier: str | None = None,
    start: str | None = None,
    end: str | None = None,
) -> tuple[dict, dict]:
    """One (agreement, addition) pair in ConnectWise's API shape. `status` is the addition's own
    status, which ConnectWise carries in the addition's `agreementStatus` (it has no additionStatus)."""
    agreement_id = agreement_id or company_id * 10
    agreement = {
        "id": agreement_id,
        "name": agreement_name,
        "type": {"name": agreement_type} if agreement_type is not None else None,
        "company": {"id": company_id},
        "agreementStatus": agreement_status,
        "cancelledFlag": agreement_cancelled,
        "startDate": start,
        "endDate": end,
    }
    record = {
        "id": addition_id,
        "agreementId": agreement_id,
        "product": {"identifier": identifier or CATALOG.get(product, product)},
        "quantity": quantity,
        "effectiveDate": effective,
        "cancelledDate": cancelled,
        "agreementStatus": status,
    }
    return agreement, record


def additions_of(*pairs: tuple[dict, dict]) -> pd.DataFrame:
    agreements = {ag["id"]: ag for ag, _ in pairs}
    return frames.additions_frame(agreements, [a for _, a in pairs])


def org_map_of(*rows: tuple[int, int]) -> pd.DataFrame:
    return frames.conform(pd.DataFrame(rows, columns=["organization_id", "company_id"]), "org_map")


ACME_ORG = (101, "Acme Corp", "acme")
ACME = (250, "acme", "Acme Corp")


def run(
    usage: pd.DataFrame,
    organizations: pd.DataFrame | None = None,
    companies: pd.DataFrame | None = None,
    additions: pd.DataFrame | None = None,
    org_map: pd.DataFrame | None = None,
    settings: Settings | None = None,
    billing_date: date = BILLING,
) -> pd.DataFrame:
    out = rc.reconcile(
        usage,
        organizations if organizations is not None else orgs_of(ACME_ORG),
        companies if companies is not None else companies_of(ACME),
        additions if additions is not None else frames.empty("additions"),
        org_map if org_map is not None else frames.empty("org_map"),
        settings or Settings(),
        billing_date,
    )
    check_shape(out)
    return out


def check_shape(out: pd.DataFrame) -> None:
    assert list(out.columns) == list(frames.SCHEMAS["outcomes"])
    assert out.dtypes.astype(str).to_dict() == frames.SCHEMAS["outcomes"]
    assert out["sync_key"].is_unique
    assert out["sync_key"].tolist() == sorted(out["sync_key"])
    assert set(out["outcome"]) <= set(names.OUTCOMES)
    quarantined = out["outcome"] == "quarantined"
    assert out["reason_code"].notna().eq(quarantined).all()
    assert set(out["reason_code"].dropna()) <= set(names.REASON_CODES)
    assert out.loc[quarantined, "detail"].notna().all()


def key(out: pd.DataFrame, sync_key: str) -> dict[str, Any]:
    hit = out[out["sync_key"] == sync_key]
    assert len(hit) == 1, f"{sync_key} not in {out['sync_key'].tolist()}"
    return hit.iloc[0].to_dict()


def acme(edr: Any = 40, quantity: Any = 38, settings: Settings | None = None, **more: Any) -> dict[str, Any]:
    """Acme Corp (org 101, key match) with one live EDR addition: the company:250:edr row."""
    out = run(
        usage_of(line(101, "Acme Corp", edr=edr)),
        additions=additions_of(addition(501, 250, "edr", quantity)),
        settings=settings,
        **more,
    )
    return key(out, "company:250:edr")
