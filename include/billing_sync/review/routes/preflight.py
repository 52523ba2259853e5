"""Preflight on the runs page.

The same read-only checks as `python -m billing_sync preflight`
(billing_sync.preflight), for the page's tenant, as a table. A reader's page.

    GET /runs/preflight          what it checks, and the button
    GET /runs/preflight?run=1    the checks, run now (read-only calls to Huntress and ConnectWise)

Registered before the runs router: /runs/preflight is no run id.
"""

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from billing_sync import preflight, tenants
from billing_sync.config import load_settings
from billing_sync.errors import ConfigError
from billing_sync.review import settings_variable
from billing_sync.review.deps import ContextDep, ReaderDep, TenantDep

router = APIRouter(prefix="/runs")


@router.get("/preflight", response_class=HTMLResponse)
def preflight_page(
    request: Request, reviewer: ReaderDep, context: ContextDep, tenant: TenantDep
) -> HTMLResponse:
    if not tenant.active or tenant.variable is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"tenant {tenant.id} is no longer configured")
    checks: list[preflight.Check] | None = None
    if request.query_params.get("run") == "1":
        try:
            settings = load_settings(settings_variable.read(tenant.variable).text)
        except ConfigError as exc:
            checks = [preflight.Check(f"Variable {tenant.variable}", preflight.FAIL, str(exc))]
        else:
            checks = preflight.run(tenants.by_id(tenant.id), settings, today=preflight.today_utc())
    return context.render(
        request,
        reviewer,
        "preflight.html",
        checks=checks,
        passed=checks is not None and preflight.passed(checks),
    )
