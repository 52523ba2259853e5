"""Two tenants, `north` and `south`, on one billing DB for TestClient tests: both tenants' rows
under the SAME run id (every tenant's DAG has the same run ids), the runs of `gone`, a tenant no
longer in the file, and the same organization (1) and company (10) ids in both, as two Huntress
accounts and two ConnectWise sites may well number them. Auth is replaced by headers naming the
DAGs a user may read (`X-Read`), act on (`X-Act`) and map on (`X-Map`), decided per the page's
tenant; `PerDagAuthManager` answers per DAG id, which SimpleAuthManager cannot.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

from billing_sync import frames, store, tenants
from billing_sync.review import deps, tenancy
from billing_sync.review.app import create_app
from billing_sync.review.security import ReviewAuth, Reviewer
from billing_sync.review.tenancy import PageTenant
from tests.helpers.review_roles import stand_in_powers

RUN = "scheduled__2026-12-01T00:00:00+00:00"  # both tenants' DAGs have this run
DAY = "2026-12-01"
DAG = "huntress_connectwise_billing_sync"
NORTH_DAG, SOUTH_DAG, GONE_DAG = f"{DAG}__north", f"{DAG}__south", f"{DAG}__gone"
ORG, COMPANY = 1, 10  # the same ids in both tenants


@dataclass(frozen=True)
class Fixture:
    name: str
    invoice: int
    huntress: int  # units of edr on the run's totals: what the charts draw


TENANTS = {"north": Fixture("Northwind", 7001, 111), "south": Fixture("Southpaw", 7002, 222)}
EVERY_DAG = ",".join([NORTH_DAG, SOUTH_DAG, GONE_DAG])
BOTH = {"X-User": "bea", "X-Read": EVERY_DAG, "X-Act": EVERY_DAG, "X-Map": EVERY_DAG}
NORTH_ONLY = {"X-User": "nils", "X-Read": NORTH_DAG, "X-Act": NORTH_DAG, "X-Map": NORTH_DAG}


# --- the stand-in auth: rights per DAG, asked about the page's tenant ---------------------------------


def _listed(request: Request, header: str, tenant: PageTenant) -> bool:
    return tenant.dag_id in (request.headers.get(header) or "").split(",")


def reader(request: Request, tenant: Annotated[PageTenant, Depends(deps.current_tenant)]) -> Reviewer:
    user = request.headers.get("x-user")
    if not user:
        raise HTTPException(401, "Not authenticated")
    # As airflow_auth does: the tenants this user may read, for the switcher and the 403 page.
    read = (request.headers.get("x-read") or "").split(",")
    tenancy.remember_readable(request, tuple(c for c in tenant.choices if c.dag_id in read))
    if not _listed(request, "x-read", tenant):
        raise HTTPException(403, "Forbidden")
    acts = _listed(request, "x-act", tenant)
    return Reviewer(
        user, f"{user}-id", powers=stand_in_powers(acts and _listed(request, "x-map", tenant), acts)
    )


def editor(request: Request, tenant: Annotated[PageTenant, Depends(deps.current_tenant)]) -> Reviewer:
    if not _listed(request, "x-act", tenant):
        raise HTTPException(403, "Forbidden")
    return reader(request, tenant)


def mapper(request: Request, tenant: Annotated[PageTenant, Depends(deps.current_tenant)]) -> Reviewer:
    if not _listed(request, "x-map", tenant):
        raise HTTPException(403, "Forbidden")
    return editor(request, tenant)


# --- the billing DB: two tenants under one run id, and a former tenant -------------------------------


def fill_tenant(engine: Any, tenant: str, reports: Path) -> dict[str, int]:
    f = TENANTS[tenant]
    store.start_run(engine, RUN, DAY, f.invoice, "push", {"agreement_types": []}, tenant=tenant)
    orgs = [{"id": ORG, "name": f"{f.name} Org", "key": tenant}]
    companies = [{"id": COMPANY, "identifier": f"{tenant}-co", "name": f"{f.name} Corp"}]
    store.write_frame(engine, RUN, "organizations", frames.organizations_frame(orgs), tenant=tenant)
    store.write_frame(engine, RUN, "companies", frames.companies_frame(companies), tenant=tenant)
    held = {
        "sync_key": f"company:{COMPANY}:edr", "company_id": COMPANY, "product": "edr", "agreement_id": 1,
        "addition_id": 2, "huntress_quantity": f.huntress, "previous_quantity": 40.0,
    }  # fmt: skip
    store.upsert_quarantine(
        engine,
        RUN,
        DAY,
        [
            {"sync_key": f"organization:{ORG}:edr", "reason_code": "unmapped_organization",
             "huntress_organization_id": ORG, "huntress_organization_name": f"{f.name} Org", "product": "edr",
             "detail": f"{f.name} is unmapped", "payload": {}},
            {"sync_key": held["sync_key"], "reason_code": "change_exceeds_limit", "cw_company_id": COMPANY,
             "product": "edr", "detail": f"{f.name} trips the guard", "payload": held},
        ],
        tenant=tenant,
    )  # fmt: skip
    store.set_org_map(engine, 2, COMPANY, f"{f.name} mapping", "someone", tenant=tenant)
    override = store.add_override(
        engine, cw_company_id=COMPANY, product="edr", rule="minimum", quantity=5,
        note=f"{f.name} floor", user="someone", tenant=tenant,
    )  # fmt: skip
    approval = store.add_approval(
        engine, billing_date=DAY, sync_key=f"company:{COMPANY}:sat", cw_company_id=COMPANY, product="sat",
        kind="change", addition_id=3, from_quantity=1, to_quantity=2, user="someone",
        note=f"{f.name} approval", tenant=tenant,
    )  # fmt: skip
    directory = reports / tenant
    directory.mkdir(parents=True)
    (directory / "report.html").write_text(f"<h1>{f.name} report</h1>")
    products = {"edr": {"huntress": f.huntress, "connectwise_before": 40, "connectwise_after": 40}}
    store.finish_run(
        engine,
        RUN,
        "success",
        {"quarantined": 2, "total": 2},
        {"products": products},
        str(directory),
        tenant=tenant,
    )
    rows = {q["reason_code"]: q["id"] for q in store.list_quarantine(engine, status="open", tenant=tenant)}
    return {**rows, "override": override["id"], "approval": approval["id"]}


def fill(engine: Any, reports: Path) -> dict[str, dict[str, int]]:
    ids = {t: fill_tenant(engine, t, reports) for t in TENANTS}
    store.start_run(engine, RUN, DAY, 7003, "push", {}, tenant="gone")
    store.finish_run(engine, RUN, "success", {}, {}, None, tenant="gone")
    return ids


def tenants_file(path: Path) -> Path:
    entry = {
        "huntress_conn_id": "huntress_default",
        "connectwise_conn_id": "connectwise_default",
        "billing_day": 1,
    }
    path.write_text(
        json.dumps({"tenants": [{**entry, "id": t, "variable": f"billing_{t}"} for t in TENANTS]}, indent=2)
    )
    return path


class Site:
    def __init__(self, client: TestClient, sub: FastAPI, engine: Any, ids: dict[str, dict[str, int]]) -> None:
        self.client, self.sub, self.engine, self.ids = client, sub, engine, ids

    def get(self, path: str, headers: dict[str, str] = BOTH, **kw: Any) -> Any:
        return self.client.get(f"/billing-review{path}", headers=headers, **kw)

    def page(self, path: str, headers: dict[str, str] = BOTH) -> str:
        response = self.get(path, headers)
        assert response.status_code == 200, (path, response.text)
        return response.text

    def post(self, path: str, data: dict[str, str], headers: dict[str, str] = BOTH) -> Any:
        token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', self.page("/quarantine", headers))
        form = {**data, "csrf_token": token.group(1)}
        return self.client.post(f"/billing-review{path}", data=form, headers=headers, follow_redirects=False)


def make_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auth: ReviewAuth) -> Iterator[Site]:
    monkeypatch.setenv(tenants.TENANTS_FILE_ENV, str(tenants_file(tmp_path / "tenants.json")))
    for t in TENANTS:  # the tenants' settings (unless the caller set them), not what another test left
        if f"AIRFLOW_VAR_BILLING_{t.upper()}" not in os.environ:  # in the metadata database
            monkeypatch.setenv(f"AIRFLOW_VAR_BILLING_{t.upper()}", "{}")
    engine = store.make_engine(f"sqlite:///{tmp_path / 'billing.db'}")
    ids = fill(engine, tmp_path / "reports")
    sub = create_app(engine=engine, auth=auth, csrf_secret=b"k", reports_root=tmp_path / "reports")
    root = FastAPI()
    root.mount("/billing-review", sub)
    with TestClient(root) as client:
        yield Site(client, sub, engine, ids)
    engine.dispose()


class PerDagAuthManager:
    """An auth manager that allows each user the DAGs (and Variables) listed for them, by method:
    what FAB or Keycloak can express and SimpleAuthManager cannot."""

    def __init__(self, grants: dict[str, dict[str, set[str]]]) -> None:
        self.grants = grants  # user → method → DAG ids and Variable keys
        self.asked: list[tuple[str, str, str, Any]] = []

    def is_authorized_dag(self, *, method: str, access_entity: Any, details: Any, user: Any) -> bool:
        self.asked.append((user.username, method, details.id, access_entity))
        return details.id in self.grants.get(user.username, {}).get(method, set())

    def is_authorized_variable(self, *, method: str, details: Any, user: Any) -> bool:
        return details.key in self.grants.get(user.username, {}).get(method, set())
