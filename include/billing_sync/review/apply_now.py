"""Triggers the tenant's apply DAG after a decision.

Apply now (issue 20 §1): after a decision is recorded, trigger the tenant's apply DAG for exactly
what it touches, as the signed-in user holding the ``apply`` power (`airflow_runs.trigger_apply_run`: Airflow decides whether
they may). The decision stands whatever Airflow answers; the answer goes into the redirect's query,
read back by `airflow_runs.notice` (codes, never echoed text).

The billing date of a decision that names none (a mapping, an override) is the one the page shows:
that of the newest run that staged the tenant's organizations.
"""

from datetime import date

from fastapi import HTTPException, Request, status
from sqlalchemy.engine import Engine

from billing_sync import store, tenants
from billing_sync.review import airflow_runs
from billing_sync.review.security import Reviewer

FORM_FIELD = "apply"  # "1": the decision's "... and apply now" button


def wanted(value: str) -> bool:
    return value == "1"


def staged_billing_date(eng: Engine, *, tenant: str) -> date | None:
    """The billing date of the newest run that staged the tenant's organizations (None: no run)."""
    run_id = store.newest_staged_run(eng, "organizations", tenant=tenant)
    run = store.get_run(eng, run_id, tenant=tenant) if run_id else None
    day = run.get("billing_date") if run else None
    return day if isinstance(day, date) else None


def trigger(
    request: Request, api: str, tenant_id: str, scope: airflow_runs.Scope, what: str, *, reviewer: Reviewer
) -> dict[str, str]:
    """Trigger the apply DAG for `scope` as the user; the redirect's query saying how it went. A
    reviewer without the ``apply`` power triggers nothing: the decision stands, the notice says so."""
    day = scope.billing_date.isoformat()
    if not reviewer.may("apply"):
        return {"rerun": "apply_not_allowed", "date": day}
    token = airflow_runs.user_token(request)
    if token is None:
        return {"rerun": "apply_refused", "date": day}
    dag_id = tenants.apply_dag_id_of(tenant_id)
    try:
        run = airflow_runs.trigger_apply_run(api, token, scope, what, dag_id=dag_id)
    except airflow_runs.RunExists:
        return {"rerun": "exists", "date": day}
    except HTTPException as exc:
        refused = exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN)
        return {"rerun": "apply_refused" if refused else "apply_failed", "date": day}
    return airflow_runs.outcome_query(run, scope.billing_date, applying=True)
