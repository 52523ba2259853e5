"""The quarantine's company cards: badges and links.

What the quarantine's company cards say beside their rows (issue 20 §3): each row's badges, and
what a card's decisions link to.

A row's badges, where true:

- ``pending``: an approval of its billing date and sync key waits for a run to apply it;
- ``override``: an active override decides its company and product;
- ``applying``: a run of the tenant's apply DAG is queued or running whose scope (its conf) covers
  the row's billing date and its company or organization.

Approvals and overrides are read from the billing database, one query each per page. The apply runs
are Airflow's: asked once per page, as the signed-in user, with a short wait; when Airflow cannot
be asked (no login, refused, unreachable, slow) the page is drawn without "applying…".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request
from sqlalchemy.engine import Engine

from billing_sync import reconcile, store, tenants
from billing_sync.review import airflow_live, airflow_runs
from billing_sync.review.queries.quarantine import QueueRow

BADGES = {
    "pending": "approval pending",
    "override": "override active",
    "applying": "applying…",
}


@dataclass(frozen=True)
class Applying:
    """The scope of one queued or running apply run, as its conf says."""

    billing_date: str
    companies: frozenset[int]
    organizations: frozenset[int]

    def covers(self, row: store.QuarantineRow) -> bool:
        if row["billing_date"].isoformat() != self.billing_date:
            return False
        company, org = row["cw_company_id"], row["huntress_organization_id"]
        return (company is not None and int(company) in self.companies) or (
            org is not None and int(org) in self.organizations
        )


def applying(request: Request, api: str, tenant: str) -> list[Applying]:
    """The scopes of the tenant's apply runs Airflow has queued or running: one request, as the
    user; none when Airflow cannot be asked."""
    token = airflow_runs.user_token(request)
    if token is None:
        return []
    try:
        runs = airflow_live.active_runs(api, token, tenants.apply_dag_id_of(tenant))
    except HTTPException:
        return []
    return [s for s in (_scope(r.get("conf")) for r in runs if r.get("state") in airflow_live.ACTIVE) if s]


def _scope(conf: object) -> Applying | None:
    if not isinstance(conf, Mapping) or not isinstance(conf.get("billing_date"), str):
        return None
    return Applying(conf["billing_date"], _ids(conf.get("companies")), _ids(conf.get("organizations")))


def _ids(value: object) -> frozenset[int]:
    if not isinstance(value, list):
        return frozenset()
    return frozenset(v for v in value if isinstance(v, int) and not isinstance(v, bool))


def mark(engine: Engine, rows: Sequence[QueueRow], runs: Iterable[Applying], *, tenant: str) -> None:
    """Put each row's badges in ``row["badges"]`` (a list of `BADGES` keys, in that order) and, for
    an open held change, the quantity an adjustment starts from in ``row["adjust_to"]``."""
    if not rows:
        return
    scopes = list(runs)
    pending = {
        (a["billing_date"], a["sync_key"])
        for a in store.list_approvals(engine, status="pending", limit=None, tenant=tenant)
    }
    overrides = {
        (o["cw_company_id"], o["product"]) for o in store.list_overrides(engine, active=True, tenant=tenant)
    }
    for row in rows:
        found: list[str] = []
        if (row["billing_date"], row["sync_key"]) in pending:
            found.append("pending")
        company = row["cw_company_id"]
        if company is not None and (int(company), row["product"]) in overrides:
            found.append("override")
        if row["status"] == "open" and any(s.covers(row) for s in scopes):
            found.append("applying")
        row["badges"] = found
        row["adjust_to"] = adjust_to(row)


def adjust_to(row: store.QuarantineRow) -> int | None:
    """The quantity "Adjust…" fills in for an open held change: the one the sync aimed for (the
    person changes it). None for any other row."""
    if row["status"] != "open" or row["reason_code"] != "change_exceeds_limit":
        return None
    payload = row["payload"]
    try:
        quantity = reconcile.aimed_quantity(payload if isinstance(payload, dict) else {})
    except (TypeError, ValueError):  # a count that is no number: nothing to start from
        return None
    return quantity if quantity is not None and quantity >= 0 else None
